//! `binfmtd daemon`: keeps the desired state (applied at start, on SIGHUP and on drift) through
//! the engine, and serves it through a transport-neutral [`Front`] (D-Bus, wired in by the
//! CLI from the D-Bus adapter, or none with `--no-bus`).

pub mod backend;
pub mod caps;
pub mod ops_backend;
pub mod service;
pub mod watch;

use crate::config::Paths;
use backend::Backend;
use service::{Change, Service};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future, as the [`Front`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A front's own error (it names the bus and the remedy).
pub type FrontError = Box<dyn std::error::Error + Send + Sync>;

/// What serves the daemon to clients: connects before the first reconcile (so a broken
/// transport fails the start), serves after it, and announces changes.
pub trait Front: Send {
    fn connect(&mut self) -> BoxFuture<'_, Result<(), FrontError>>;
    fn serve(&mut self, service: Arc<Service>) -> BoxFuture<'_, Result<(), FrontError>>;
    fn announce(&self, change: Change) -> BoxFuture<'_, ()>;
}

/// What `binfmtd daemon` needs from the command line.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Every path (binfmt_misc, state, config with `binfmtd.toml` + `config.d/`, binfmt.d),
    /// from the CLI's global path options.
    pub paths: Paths,
    /// `--check-interval SECONDS`: a safety re-check on top of the events; None = events only.
    pub safety_interval: Option<Duration>,
    /// `--metrics-file PATH`: keep the Prometheus text there, written atomically.
    pub metrics_file: Option<std::path::PathBuf>,
    /// Do not require or drop capabilities: only for in-process tests in a user namespace,
    /// where the kernel, not capabilities, decides. No command-line option sets it.
    pub skip_caps: bool,
}

/// Why the daemon stopped or could not start; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Caps(#[from] caps::CapsError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Front(FrontError),
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
/// client and event handling, at most two blocking threads for the engine, which exit after
/// a second idle (so the idle daemon is one sleeping thread). `binfmtd daemon` calls this.
pub fn run_blocking(opts: DaemonOptions, front: Option<Box<dyn Front>>) -> Result<(), DaemonError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .thread_keep_alive(Duration::from_secs(1))
        .build()
        .map_err(DaemonError::Runtime)?
        .block_on(run(opts, front))
}

/// Runs the daemon with the real engine until SIGTERM/SIGINT.
pub async fn run(opts: DaemonOptions, front: Option<Box<dyn Front>>) -> Result<(), DaemonError> {
    // A config the daemon cannot read (an unknown key, a typo) stops it before it acts.
    crate::persist::desired::Config::load(&opts.paths.config_dir)?;
    let backend = ops_backend::OpsBackend::new(opts.paths.clone())
        .map_err(|e| DaemonError::Setup(e.to_string()))?;
    run_with(opts, Arc::new(backend), front).await
}

/// Runs the daemon on a given backend (tests substitute it) behind an optional front.
pub async fn run_with(
    opts: DaemonOptions,
    backend: Arc<dyn Backend>,
    mut front: Option<Box<dyn Front>>,
) -> Result<(), DaemonError> {
    crate::logging::init("info");
    if !opts.skip_caps {
        caps::check_and_drop()?;
    }
    if let Some(f) = front.as_mut() {
        f.connect().await.map_err(DaemonError::Front)?;
    }
    let service = Arc::new(Service::new(backend));
    service.set_outputs(service::Outputs {
        state_dir: opts.paths.state_dir.clone(),
        metrics_file: opts.metrics_file.clone(),
    });
    // Watch before the first reconcile so nothing between the two goes unnoticed.
    let mut watcher = watch::Watcher::new(&opts.paths.binfmt_misc, opts.safety_interval);
    if let Err(e) = service.reconcile(service::START).await {
        tracing::warn!("initial apply of the desired state failed: {e}");
    }
    match front.as_mut() {
        Some(f) => f
            .serve(Arc::clone(&service))
            .await
            .map_err(DaemonError::Front)?,
        None => tracing::info!(
            watching = watcher.watching(),
            "keeping the desired state without D-Bus (--no-bus)"
        ),
    }
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("keeping binfmt_misc handlers registered"),
    ]);
    keep(&service, &mut watcher, front.as_deref()).await?;
    notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopping");
    Ok(())
}

/// The loop: reconcile on every drift trigger and SIGHUP, announce what changed.
async fn keep(
    service: &Service,
    watcher: &mut watch::Watcher,
    front: Option<&dyn Front>,
) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    loop {
        let why = tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                "SIGHUP (reload)"
            }
            trigger = watcher.next() => {
                watcher.settle(Duration::from_millis(200), Duration::from_secs(2)).await;
                trigger.as_str()
            }
        };
        match service.reconcile(why).await {
            Ok((_, change)) if change.any() => {
                if let Some(f) = front {
                    f.announce(change).await;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("reconcile after {why} failed: {e}"),
        }
        if why.starts_with("SIGHUP") {
            notify(&[sd_notify::NotifyState::Ready]);
        }
    }
}
