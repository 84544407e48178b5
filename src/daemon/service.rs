//! The daemon's core: serializes changes through the engine, caches what properties show,
//! bounds Doctor calls. Knows no transport: the D-Bus adapter calls it.

use super::backend::{Backend, Observed, ServiceError};
use crate::catalog::Selection;
use crate::engine::{EntriesRequest, InstallRequest, Item, Outcome};
use std::sync::{Arc, RwLock};
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

pub struct Service {
    backend: Arc<dyn Backend>,
    view: RwLock<Observed>,
    op: tokio::sync::Mutex<()>,
    doctor_slots: Arc<tokio::sync::Semaphore>,
    doctor_timeout: Duration,
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
        Ok((items, self.refresh().await?))
    }

    /// Uninstalls, enables or disables through the engine (recorded unless refused).
    pub async fn change(&self, req: EntriesRequest) -> Result<(Vec<Item>, Change), ServiceError> {
        let _guard = self.op.lock().await;
        let items = self.blocking("change", move |b| b.change(&req)).await??;
        Ok((items, self.refresh().await?))
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

    /// Applies the desired state through the engine: installs what is wanted and missing
    /// (verified, never forced), re-applies disabled marks. Logs each repair.
    pub async fn reconcile(&self, why: &str) -> Result<(Vec<Item>, Change), ServiceError> {
        let _guard = self.op.lock().await;
        let items = self.blocking("reconcile", |b| b.reconcile()).await??;
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
        Ok((items, self.refresh().await?))
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
