//! The daemon's core: serializes changes, keeps desired state, caches what properties show.

use super::backend::{Backend, Observed};
use super::desired::{canonical_keys, effective, Config, Recorded};
use crate::dbus::errors::Error;
use crate::dbus::types::{InstallOptions, ItemReport, UninstallOptions};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

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

/// Outcomes that mean "the kernel was changed" (a repair when reconciling).
pub fn is_write(outcome: &str) -> bool {
    matches!(
        outcome,
        "installed" | "replaced" | "enabled" | "disabled" | "removed"
    )
}

/// Brings one wanted platform to its desired state with as few writes as possible. A platform
/// kept disabled is only disabled when its entry exists: installing it first would enable it
/// (a write, hence an inotify event, hence another round) before disabling it again.
fn keep(
    b: &dyn Backend,
    target: String,
    options: &InstallOptions,
    enabled: bool,
) -> Result<Vec<ItemReport>, Error> {
    let target = [target];
    if enabled {
        return b.install(&target, options);
    }
    let items = b.set_enabled(&target, false)?;
    if !items.is_empty() && items.iter().all(|i| i.outcome != "absent") {
        return Ok(items);
    }
    let mut items = b.install(&target, options)?;
    items.extend(b.set_enabled(&target, false)?);
    Ok(items)
}

/// Where desired state lives.
#[derive(Debug, Clone)]
pub struct Places {
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
}

pub struct Engine {
    backend: Arc<dyn Backend>,
    places: Places,
    view: RwLock<Observed>,
    op: tokio::sync::Mutex<()>,
    doctor_slots: tokio::sync::Semaphore,
}

/// Doctor calls that may run at once.
pub const DOCTOR_SLOTS: usize = 2;
/// How long a caller waits for a Doctor report.
pub const DOCTOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Failed(format!(
        "{what} failed inside binfmtd: {e}; see the daemon's log"
    ))
}

impl Engine {
    pub fn new(backend: Arc<dyn Backend>, places: Places) -> Self {
        Engine {
            backend,
            places,
            view: RwLock::new(Observed::default()),
            op: tokio::sync::Mutex::new(()),
            doctor_slots: tokio::sync::Semaphore::new(DOCTOR_SLOTS),
        }
    }

    /// The last observation (what the properties show). Cheap: no I/O.
    pub fn view(&self) -> Observed {
        self.view
            .read()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Reads a field of the cached view without cloning the rest.
    pub fn with_view<T>(&self, f: impl FnOnce(&Observed) -> T) -> T {
        match self.view.read() {
            Ok(v) => f(&v),
            Err(p) => f(&p.into_inner()),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&dyn Backend) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let backend = Arc::clone(&self.backend);
        tokio::task::spawn_blocking(move || f(backend.as_ref()))
            .await
            .map_err(|e| internal(what, e))
    }

    /// Observes host and kernel again and reports which properties changed.
    pub async fn refresh(&self) -> Result<Change, Error> {
        let observed = self.blocking("observe", |b| b.observe()).await??;
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        let change = Change::between(&view, &observed);
        *view = observed;
        Ok(change)
    }

    /// Answers an Install that changes nothing without waiting for the operation lock: every
    /// platform is recorded with these options and its handler is binfmtd's, enabled and
    /// winning right now (builders call Install before every build). `all` and `force`
    /// always take the full path.
    fn already_installed(
        &self,
        platforms: &[String],
        options: &InstallOptions,
    ) -> Option<Vec<ItemReport>> {
        if options.force
            || platforms.is_empty()
            || platforms.iter().any(|w| w.eq_ignore_ascii_case("all"))
        {
            return None;
        }
        let record = self.load_record().ok()?;
        let mut reports = Vec::new();
        for word in platforms {
            let key = self.backend.canonical(word);
            let spec = record.installed.get(&key)?;
            let same = spec.flags == options.flags
                && spec.persist == options.persist
                && spec.allow_dynamic == options.allow_dynamic;
            if !same || record.disabled.contains(&key) {
                return None;
            }
            let live = self.with_view(|v| {
                v.handlers.iter().find(|h| h.name == key).map(|h| {
                    (
                        h.owner == "binfmtd" && h.enabled && h.wins,
                        h.platform.clone(),
                    )
                })
            })?;
            if !live.0 {
                return None;
            }
            reports.push(ItemReport {
                platform: live.1,
                handler: key,
                outcome: "unchanged".into(),
                message: "already registered by binfmtd, enabled, and the one the kernel uses"
                    .into(),
            });
        }
        Some(reports)
    }

    /// The desired-state keys of request words; `all` is every platform wanted now.
    fn keys(&self, words: &[String], record: &Recorded) -> Result<Vec<String>, Error> {
        let config =
            Config::load(&self.places.config_dir).map_err(|e| Error::Failed(e.to_string()))?;
        let canon = |w: &str| self.backend.canonical(w);
        let current: Vec<String> = effective(&config, record, &canon)
            .into_iter()
            .map(|w| w.platform)
            .collect();
        Ok(canonical_keys(words, &canon, &current))
    }

    fn load_record(&self) -> Result<Recorded, Error> {
        Recorded::load(&self.places.state_dir).map_err(|e| Error::Failed(e.to_string()))
    }

    fn save_record(&self, before: &Recorded, after: &Recorded) -> Result<(), Error> {
        if before == after {
            return Ok(());
        }
        after
            .save(&self.places.state_dir)
            .map_err(|e| Error::Failed(e.to_string()))
    }

    /// Installs each platform and keeps it in the desired state. Intent is recorded first,
    /// so a crash mid-install leaves the platforms in the desired state and the next start
    /// completes them; a platform whose install fails is taken out again.
    pub async fn install(
        &self,
        platforms: Vec<String>,
        options: InstallOptions,
    ) -> Result<(Vec<ItemReport>, Change), Error> {
        if let Some(reports) = self.already_installed(&platforms, &options) {
            return Ok((reports, Change::default()));
        }
        let _guard = self.op.lock().await;
        let before = self.load_record()?;
        let mut record = before.clone();
        // `all` stays one key: "keep every available platform installed".
        let keyed: Vec<(String, String)> = platforms
            .iter()
            .map(|w| {
                let key = if w.eq_ignore_ascii_case("all") {
                    "all".to_string()
                } else {
                    self.backend.canonical(w)
                };
                (w.clone(), key)
            })
            .collect();
        for (_, key) in &keyed {
            record.install(key, &options);
        }
        self.save_record(&before, &record)?;
        let intended = record.clone();
        let mut reports = Vec::new();
        for (word, platform) in keyed {
            let opts = options.clone();
            let items = self
                .blocking("install", move |b| b.install(&[word], &opts))
                .await?;
            match items {
                Ok(items) if items.iter().all(|i| i.outcome != "failed") => reports.extend(items),
                other => {
                    record.forget_install(&platform, &before);
                    match other {
                        Ok(items) => reports.extend(items),
                        Err(e) => {
                            self.save_record(&intended, &record)?;
                            return Err(e);
                        }
                    }
                }
            }
        }
        self.save_record(&intended, &record)?;
        Ok((reports, self.refresh().await?))
    }

    /// Uninstalls owned entries of the platforms and drops them from the desired state.
    pub async fn uninstall(
        &self,
        platforms: Vec<String>,
        options: UninstallOptions,
    ) -> Result<(Vec<ItemReport>, Change), Error> {
        self.change(
            platforms,
            "uninstall",
            move |b, list| b.uninstall(list, &options),
            |record, key| record.uninstall(key),
        )
        .await
    }

    /// Enables or disables owned entries and records it, so drift repair keeps it that way.
    pub async fn set_enabled(
        &self,
        platforms: Vec<String>,
        enabled: bool,
    ) -> Result<(Vec<ItemReport>, Change), Error> {
        self.change(
            platforms,
            "enable/disable",
            move |b, list| b.set_enabled(list, enabled),
            move |record, key| record.set_enabled(key, enabled),
        )
        .await
    }

    /// Records a change of existing entries in the desired state, then makes it: recorded
    /// first, so the drift repair that the change itself triggers already sees it.
    async fn change(
        &self,
        platforms: Vec<String>,
        what: &'static str,
        act: impl FnOnce(&dyn Backend, &[String]) -> Result<Vec<ItemReport>, Error> + Send + 'static,
        mark: impl Fn(&mut Recorded, &str),
    ) -> Result<(Vec<ItemReport>, Change), Error> {
        let _guard = self.op.lock().await;
        let before = self.load_record()?;
        let mut record = before.clone();
        for key in self.keys(&platforms, &before)? {
            mark(&mut record, &key);
        }
        self.save_record(&before, &record)?;
        let reports = self.blocking(what, move |b| act(b, &platforms)).await??;
        Ok((reports, self.refresh().await?))
    }

    /// Runs the doctor on a caller's open file; read-only, so it does not wait for changes.
    /// Doctor needs no authorization, so it never uses the threads installs and drift repair
    /// run on: at most [`DOCTOR_SLOTS`] run at once, each on its own thread, and a caller
    /// gets an error after [`DOCTOR_TIMEOUT`] (a file on a stalled mount cannot wedge the
    /// daemon).
    pub async fn doctor(&self, fd: std::os::fd::OwnedFd, name: String) -> Result<String, Error> {
        let Ok(_slot) = self.doctor_slots.try_acquire() else {
            return Err(Error::Failed(format!(
                "{DOCTOR_SLOTS} Doctor calls are running already; try again shortly"
            )));
        };
        let backend = Arc::clone(&self.backend);
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("doctor".into())
            .spawn(move || {
                let _ = tx.send(backend.doctor(fd, &name));
            })
            .map_err(|e| internal("doctor", e))?;
        match tokio::time::timeout(DOCTOR_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(internal("doctor", e)),
            Err(_) => Err(Error::Failed(format!(
                "the diagnosis did not finish within {}s (is the file on a stalled mount?)",
                DOCTOR_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Applies the desired state: installs what is wanted and missing, re-applies disabled
    /// marks. Never forces, so entries binfmtd does not own are left alone. Logs each repair.
    pub async fn reconcile(&self, why: &str) -> Result<(Vec<ItemReport>, Change), Error> {
        let _guard = self.op.lock().await;
        let config =
            Config::load(&self.places.config_dir).map_err(|e| Error::Failed(e.to_string()))?;
        let record = self.load_record()?;
        let mut reports = Vec::new();
        let canon = |w: &str| self.backend.canonical(w);
        for wanted in effective(&config, &record, &canon) {
            let target = wanted.target.clone();
            let options = wanted.options.clone();
            let enabled = wanted.enabled;
            let result = self
                .blocking("reconcile", move |b| keep(b, target, &options, enabled))
                .await?;
            match result {
                Ok(items) => reports.extend(items),
                Err(e) => {
                    let message = zbus::DBusError::description(&e)
                        .unwrap_or_default()
                        .to_string();
                    tracing::warn!(platform = %wanted.platform, "cannot keep desired platform: {message}");
                    reports.push(ItemReport {
                        platform: wanted.platform.clone(),
                        handler: wanted.target.clone(),
                        outcome: "failed".into(),
                        message,
                    });
                }
            }
        }
        for item in reports.iter().filter(|i| is_write(&i.outcome)) {
            tracing::info!(
                platform = %item.platform,
                handler = %item.handler,
                outcome = %item.outcome,
                trigger = why,
                "repaired: {}",
                item.message
            );
        }
        Ok((reports, self.refresh().await?))
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
