//! The daemon's core: serializes changes through the engine, caches what properties show,
//! bounds Doctor calls. Knows no transport: the D-Bus adapter calls it.

use super::backend::{Backend, Observed, ServiceError};
use crate::catalog::Selection;
use crate::engine::{EntriesRequest, InstallRequest, Item, Outcome};
use crate::persist::daemon_status::{self, DaemonStatus, FailedHandler};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

/// Which properties differ between two observations (pure comparison).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    pub host: bool,
    pub handlers: bool,
    pub mounted: bool,
    pub global_status: bool,
}

impl Change {
    pub fn between(old: &Observed, new: &Observed) -> Change {
        Change {
            host: old.host_architecture != new.host_architecture
                || old.native_platforms != new.native_platforms
                || old.supported_platforms != new.supported_platforms,
            handlers: old.handlers != new.handlers,
            mounted: old.mounted != new.mounted,
            global_status: old.global_status != new.global_status,
        }
    }
    pub fn any(self) -> bool {
        self.host || self.handlers || self.mounted || self.global_status
    }
}

/// What the daemon counts while it runs (drift repairs, reconciles, what failed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Entries re-registered by a reconcile after start (the start itself is not drift).
    pub repairs_total: u64,
    pub last_repair: Option<f64>,
    pub last_reconcile: Option<f64>,
    /// What the last reconcile could not keep.
    pub failed: Vec<FailedHandler>,
}

impl Stats {
    /// Counts one reconcile's items (pure apart from the clock value passed in).
    pub fn count_reconcile(&mut self, items: &[Item], why: &str, now: f64) {
        self.last_reconcile = Some(now);
        let writes = items.iter().filter(|i| i.outcome.is_write()).count() as u64;
        if writes > 0 && why != START {
            self.repairs_total += writes;
            self.last_repair = Some(now);
        }
        self.failed = items
            .iter()
            .filter(|i| i.outcome == Outcome::Failed)
            .map(|i| FailedHandler {
                handler: i.handler.clone(),
                platform: i.platform.clone(),
                message: i.message.clone(),
            })
            .collect();
    }
}

/// The trigger of the reconcile the daemon runs when it starts.
pub const START: &str = "start";

/// Where the daemon publishes its record (and, with `--metrics-file`, the metrics).
#[derive(Debug, Clone)]
pub struct Outputs {
    pub state_dir: PathBuf,
    pub metrics_file: Option<PathBuf>,
}

pub struct Service {
    backend: Arc<dyn Backend>,
    view: RwLock<Observed>,
    op: tokio::sync::Mutex<()>,
    doctor_slots: Arc<tokio::sync::Semaphore>,
    doctor_timeout: Duration,
    stats: Mutex<Stats>,
    outputs: OnceLock<Outputs>,
    /// Desired-state keys whose last attempt failed (not retried on a drift event alone).
    failed: Mutex<std::collections::BTreeSet<String>>,
}

/// Doctor calls that may run at once.
pub const DOCTOR_SLOTS: usize = 2;
/// How long a caller waits for a Doctor report.
pub const DOCTOR_TIMEOUT: Duration = Duration::from_secs(30);

fn internal(what: &str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Failed(format!(
        "{what} failed inside binfmtd: {e}; see the daemon's log"
    ))
}

impl Service {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self::with_doctor_timeout(backend, DOCTOR_TIMEOUT)
    }

    /// A service whose Doctor calls give up after `timeout` (tests shorten it).
    pub fn with_doctor_timeout(backend: Arc<dyn Backend>, timeout: Duration) -> Self {
        Service {
            backend,
            view: RwLock::new(Observed::default()),
            op: tokio::sync::Mutex::new(()),
            doctor_slots: Arc::new(tokio::sync::Semaphore::new(DOCTOR_SLOTS)),
            doctor_timeout: timeout,
            stats: Mutex::new(Stats::default()),
            failed: Mutex::default(),
            outputs: OnceLock::new(),
        }
    }

    /// Publishes the record after every change from now on (set once, at start).
    pub fn set_outputs(&self, outputs: Outputs) {
        let _ = self.outputs.set(outputs);
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The daemon's record: the last verification and the counters.
    pub fn status(&self) -> DaemonStatus {
        let v = self.backend.verified();
        let st = self.stats();
        DaemonStatus {
            verified_at: v.at,
            probe_seconds: v.probe_seconds,
            platforms: v.platforms,
            interpreters: v.interpreters,
            repairs_total: st.repairs_total,
            last_repair: st.last_repair,
            last_reconcile: st.last_reconcile,
            failed: st.failed,
            ..DaemonStatus::default()
        }
    }

    /// Writes the record (and the metrics file), each atomically; a failure is logged, as
    /// the daemon's job (keeping entries) does not depend on it.
    fn publish(&self) {
        let Some(out) = self.outputs.get() else {
            return;
        };
        let status = self.status();
        if let Err(e) = daemon_status::save(&out.state_dir, &status) {
            tracing::warn!(
                "cannot write {}: {e}",
                daemon_status::path(&out.state_dir).display()
            );
        }
        if let Some(path) = &out.metrics_file {
            let text = crate::metrics::render(&status);
            if let Err(e) = crate::persist::atomic::write(path, text.as_bytes(), 0o644) {
                tracing::warn!("cannot write the metrics file {}: {e}; check that its directory exists and is writable", path.display());
            }
        }
    }

    /// The last observation (what the properties show). Cheap: no I/O.
    pub fn view(&self) -> Observed {
        self.with_view(Observed::clone)
    }

    /// Reads a field of the cached view without cloning the rest.
    pub fn with_view<T>(&self, f: impl FnOnce(&Observed) -> T) -> T {
        match self.view.read() {
            Ok(v) => f(&v),
            Err(p) => f(&p.into_inner()),
        }
    }

    /// Parses request words into a selection, once, at the edge.
    pub fn select(&self, words: &[String]) -> Result<Selection, ServiceError> {
        self.backend.select(words)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&dyn Backend) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let backend = Arc::clone(&self.backend);
        tokio::task::spawn_blocking(move || f(backend.as_ref()))
            .await
            .map_err(|e| internal(what, e))
    }

    /// Observes host and kernel again and reports which properties changed.
    pub async fn refresh(&self) -> Result<Change, ServiceError> {
        let observed = self.blocking("observe", |b| b.observe()).await??;
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        let change = Change::between(&view, &observed);
        *view = observed;
        Ok(change)
    }

    /// Answers an Install that changes nothing without waiting for the operation lock: every
    /// handler is recorded with these options and is binfmtd's, enabled and winning right
    /// now (builders call Install before every build). `all` and `force` take the full path.
    fn already_installed(&self, req: &InstallRequest) -> Option<Vec<Item>> {
        let Selection::Handlers(handlers) = &req.selection else {
            return None;
        };
        if req.options.policy.force || handlers.is_empty() {
            return None;
        }
        let record = self.backend.recorded()?;
        let mut items = Vec::new();
        for key in handlers {
            let spec = record.installed.get(key)?;
            if *spec != req.options.spec_for(None) || record.disabled.contains(key) {
                return None;
            }
            let platform = self.with_view(|v| {
                v.handlers
                    .iter()
                    .find(|h| &h.name == key && h.owner == "binfmtd" && h.enabled && h.wins)
                    .map(|h| h.platform.clone())
            })?;
            items.push(Item {
                platform,
                handler: key.clone(),
                outcome: Outcome::Unchanged,
                message: "already registered by binfmtd, enabled, and the one the kernel uses"
                    .into(),
            });
        }
        Some(items)
    }

    /// Installs through the engine, which records the request in the desired state first
    /// and takes a failed handler out of it again.
    pub async fn install(&self, req: InstallRequest) -> Result<(Vec<Item>, Change), ServiceError> {
        if let Some(items) = self.already_installed(&req) {
            return Ok((items, Change::default()));
        }
        let _guard = self.op.lock().await;
        let items = self.blocking("install", move |b| b.install(&req)).await??;
        let change = self.refresh().await?;
        self.publish();
        Ok((items, change))
    }

    /// Uninstalls, enables or disables through the engine (recorded unless refused).
    pub async fn change(&self, req: EntriesRequest) -> Result<(Vec<Item>, Change), ServiceError> {
        let _guard = self.op.lock().await;
        let items = self.blocking("change", move |b| b.change(&req)).await??;
        let change = self.refresh().await?;
        self.publish();
        Ok((items, change))
    }

    /// Runs the doctor on a caller's open file; read-only, so it does not wait for changes.
    /// Doctor needs no authorization, so it never uses the threads installs and drift repair
    /// run on: at most [`DOCTOR_SLOTS`] run at once, each on its own thread that holds its
    /// slot until it really ends (a read hung on a stalled mount keeps its slot, so hung
    /// calls cannot pile up threads), and a caller gets an error after the timeout.
    pub async fn doctor(
        &self,
        fd: std::os::fd::OwnedFd,
        name: String,
    ) -> Result<String, ServiceError> {
        let Ok(slot) = Arc::clone(&self.doctor_slots).try_acquire_owned() else {
            return Err(ServiceError::Busy(format!(
                "{DOCTOR_SLOTS} Doctor calls are running already (or hung on unreadable files); try again shortly"
            )));
        };
        let backend = Arc::clone(&self.backend);
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("doctor".into())
            .spawn(move || {
                let _slot = slot;
                let _ = tx.send(backend.doctor(fd, &name));
            })
            .map_err(|e| internal("doctor", e))?;
        match tokio::time::timeout(self.doctor_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(internal("doctor", e)),
            Err(_) => Err(ServiceError::Failed(format!(
                "the diagnosis did not finish within {}s (is the file on a stalled mount?)",
                self.doctor_timeout.as_secs()
            ))),
        }
    }

    /// Lists emulated processes for a viewer; read-only, so it waits for no change.
    pub async fn list_emulated(
        &self,
        viewer: crate::procs::Viewer,
        window: Duration,
    ) -> Result<crate::procs::Report, ServiceError> {
        self.blocking("list", move |b| b.list_emulated(viewer, window))
            .await?
    }

    fn failed_keys(&self) -> std::collections::BTreeSet<String> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies the desired state through the engine: installs what is wanted and missing
    /// (verified, never forced), re-applies disabled marks. Logs each repair.
    pub async fn reconcile(&self, why: &str) -> Result<(Vec<Item>, Change), ServiceError> {
        let _guard = self.op.lock().await;
        // After a drift event, what failed last time is not retried: a failed attempt's own
        // register-and-undo is such an event, and would start the next attempt forever.
        // Start, SIGHUP, the safety timer and a Reconcile call retry everything.
        let skip = match why {
            "binfmt_misc changed" | "mount table changed" => self.failed_keys(),
            _ => Default::default(),
        };
        let kept = self
            .blocking("reconcile", move |b| b.reconcile(&skip))
            .await??;
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = kept.failed;
        let items = kept.items;
        for item in items.iter().filter(|i| i.outcome.is_write()) {
            tracing::info!(
                platform = %item.platform,
                handler = %item.handler,
                outcome = item.outcome.word(),
                trigger = why,
                "repaired: {}",
                item.message
            );
        }
        for item in items.iter().filter(|i| i.outcome == Outcome::Failed) {
            tracing::warn!(platform = %item.platform, handler = %item.handler, trigger = why, "cannot keep: {}", item.message);
        }
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .count_reconcile(&items, why, daemon_status::now());
        let change = self.refresh().await?;
        self.publish();
        Ok((items, change))
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
