//! `binfmtd daemon`: the D-Bus system service that applies the desired state at start and
//! repairs drift of the entries it owns.

pub mod backend;
pub mod caps;
pub mod ops_backend;
pub mod service;
pub mod watch;

use crate::config::Paths;
use crate::dbus::auth::{Authorizer, BusAuthorizer};
use crate::dbus::interface::Manager;
use crate::dbus::{BUS_NAME, OBJECT_PATH};
use backend::Backend;
use service::Service;
use std::sync::Arc;
use std::time::Duration;

/// What `binfmtd daemon` needs from the command line.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// `--bus-address ADDRESS`: a D-Bus address instead of the system bus. Without it the
    /// system bus is used, and `DBUS_SYSTEM_BUS_ADDRESS` is honoured.
    pub bus_address: Option<String>,
    /// Every path (binfmt_misc, state, config with `binfmtd.toml` + `config.d/`, binfmt.d),
    /// from the CLI's global path options.
    pub paths: Paths,
    /// `--check-interval SECONDS`: a safety re-check on top of the events; None = events only.
    pub safety_interval: Option<Duration>,
    /// Do not require or drop capabilities: only for in-process tests in a user namespace,
    /// where the kernel, not capabilities, decides. No command-line option sets it.
    pub skip_caps: bool,
    /// `--no-bus`: keep the desired state and repair drift without serving D-Bus (containers
    /// and Kubernetes nodes without a system bus).
    pub no_bus: bool,
}

/// Why the daemon stopped or could not start; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Caps(#[from] caps::CapsError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot connect to the D-Bus {bus}: {source}; check that dbus is running (or set DBUS_SYSTEM_BUS_ADDRESS / --bus-address)")]
    Connect {
        bus: String,
        #[source]
        source: zbus::Error,
    },
    #[error("cannot own the bus name {BUS_NAME} on the {bus}: {source}; is another binfmtd running, and is packaging/dbus-1/system.d/org.binfmtd1.conf installed (only root may own the name)?")]
    Name {
        bus: String,
        #[source]
        source: zbus::Error,
    },
    #[error("cannot set up the daemon: {0}")]
    Setup(String),
    #[error("{0}; the daemon did not start: fix the file and start it again")]
    Config(#[from] crate::persist::desired::DesiredError),
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// Builds the runtime the daemon is tuned for and runs [`run`] on it: one thread for all
/// D-Bus and event handling, at most two blocking threads for the core operations, which
/// exit after a second idle (so the idle daemon is one sleeping thread). `binfmtd daemon`
/// calls this.
pub fn run_blocking(opts: DaemonOptions) -> Result<(), DaemonError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .thread_keep_alive(Duration::from_secs(1))
        .build()
        .map_err(DaemonError::Runtime)?
        .block_on(run(opts))
}

/// Runs the daemon with the real core operations until SIGTERM/SIGINT.
pub async fn run(opts: DaemonOptions) -> Result<(), DaemonError> {
    // A config the daemon cannot read (an unknown key, a typo) stops it before it acts.
    crate::persist::desired::Config::load(&opts.paths.config_dir)?;
    let backend = ops_backend::OpsBackend::new(opts.paths.clone())
        .map_err(|e| DaemonError::Setup(e.to_string()))?;
    run_with(opts, Arc::new(backend)).await
}

/// Runs the daemon on a given backend (tests substitute it).
pub async fn run_with(opts: DaemonOptions, backend: Arc<dyn Backend>) -> Result<(), DaemonError> {
    crate::logging::init("info");
    if !opts.skip_caps {
        caps::check_and_drop()?;
    }
    let bus = opts
        .bus_address
        .clone()
        .unwrap_or_else(|| "system bus".into());
    let connection = if opts.no_bus {
        None
    } else {
        let builder = match &opts.bus_address {
            Some(address) => zbus::connection::Builder::address(address.as_str()),
            None => zbus::connection::Builder::system(),
        };
        Some(
            builder
                .build()
                .await
                .map_err(|source| DaemonError::Connect {
                    bus: bus.clone(),
                    source,
                })?,
        )
    };
    let engine = Arc::new(Service::new(backend));
    // Watch before the first reconcile so nothing between the two goes unnoticed.
    let mut watcher = watch::Watcher::new(&opts.paths.binfmt_misc, opts.safety_interval);
    if let Err(e) = engine.reconcile("start").await {
        tracing::warn!("initial apply of the desired state failed: {e:?}");
    }
    let iface = match &connection {
        Some(connection) => Some(serve(connection, &engine, &bus).await?),
        None => {
            tracing::info!(
                watching = watcher.watching(),
                "keeping the desired state without D-Bus (--no-bus)"
            );
            None
        }
    };
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("keeping binfmt_misc handlers registered"),
    ]);

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    loop {
        let why = tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                "SIGHUP (reload)"
            }
            trigger = watcher.next() => {
                watcher.settle(Duration::from_millis(200), Duration::from_secs(2)).await;
                trigger.as_str()
            }
        };
        match engine.reconcile(why).await {
            Ok((_, change)) if change.any() => {
                if let Some(iface) = &iface {
                    let manager = iface.get().await;
                    if let Err(e) = manager.announce(change, iface.signal_emitter()).await {
                        tracing::warn!("cannot emit change signals: {e}");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("reconcile after {why} failed: {e:?}"),
        }
        if why.starts_with("SIGHUP") {
            notify(&[sd_notify::NotifyState::Ready]);
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopping");
    Ok(())
}

/// Serves the Manager object and takes the well-known name.
async fn serve(
    connection: &zbus::Connection,
    engine: &Arc<Service>,
    bus: &str,
) -> Result<zbus::object_server::InterfaceRef<Manager>, DaemonError> {
    let auth: Arc<dyn Authorizer> = Arc::new(BusAuthorizer::new(connection.clone()));
    connection
        .object_server()
        .at(OBJECT_PATH, Manager::new(Arc::clone(engine), auth))
        .await
        .map_err(|e| DaemonError::Setup(format!("cannot serve {OBJECT_PATH}: {e}")))?;
    connection
        .request_name(BUS_NAME)
        .await
        .map_err(|source| DaemonError::Name {
            bus: bus.to_string(),
            source,
        })?;
    let iface = connection
        .object_server()
        .interface::<_, Manager>(OBJECT_PATH)
        .await
        .map_err(|e| DaemonError::Setup(e.to_string()))?;
    tracing::info!("serving {BUS_NAME} at {OBJECT_PATH} on the {bus}");
    Ok(iface)
}
