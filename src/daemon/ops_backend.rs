//! The real [`Backend`]: the core operations (`crate::ops`) on the real system paths.

use super::backend::{Backend, Observed};
use crate::config::Paths;
use crate::dbus::errors::Error;
use crate::dbus::types::{HandlerInfo, InstallOptions, ItemReport, UninstallOptions};
use crate::ops::{self, Context, OpsError};
use crate::plan::{Action, EntryOp, EntryPlan, InstallPolicy};
use std::sync::Mutex;

/// Host facts do not change while the daemon runs; they are taken once.
#[derive(Debug, Clone)]
struct HostView {
    architecture: String,
    native_platforms: Vec<String>,
}

pub struct OpsBackend {
    ctx: Context,
    host: HostView,
    /// Supported platforms need probes; they are recomputed only when handlers change.
    supported: Mutex<Option<(Vec<HandlerInfo>, Vec<String>)>>,
}

/// Maps a whole-operation failure to a typed D-Bus error (pure).
pub fn ops_error(e: OpsError) -> Error {
    let text = e.to_string();
    match e {
        OpsError::Select(_) => Error::UnknownPlatform(text),
        OpsError::Kernel(_) => Error::Kernel(text),
        OpsError::Catalog(_) | OpsError::State(_) => Error::Failed(text),
    }
}

/// The one-word outcome of an install plan (pure).
pub fn install_outcome(result: &str, action: &Action) -> &'static str {
    if result == "failed" {
        return "failed";
    }
    match action {
        Action::Register => "installed",
        Action::Replace { .. } => "replaced",
        Action::Keep { .. } => "unchanged",
        Action::Enable => "enabled",
        Action::SkipForeign { .. } => "conflict",
        Action::SkipNative | Action::SkipPreferred { .. } | Action::SkipUnavailable { .. } => {
            "skipped"
        }
        Action::Fail { .. } => "failed",
    }
}

/// What an install plan did, in words (pure).
pub fn install_message(action: &Action, error: Option<&str>) -> String {
    if let Some(e) = error {
        return e.to_string();
    }
    match action {
        Action::Register => "registered".into(),
        Action::Replace { remove } => format!("registered after removing {}", remove.join(", ")),
        Action::Keep { owned: true } => "already registered by binfmtd".into(),
        Action::Keep { owned: false } => "an identical entry is registered already".into(),
        Action::Enable => "was disabled; enabled".into(),
        Action::SkipNative => "the CPU runs this platform natively".into(),
        Action::SkipForeign { provider, .. } => format!(
            "{provider} (not binfmtd's) serves this platform; pass force=true to replace it"
        ),
        Action::SkipPreferred { by } => format!("{by} serves it instead (preferred)"),
        Action::SkipUnavailable { reason } | Action::Fail { reason } => reason.clone(),
    }
}

/// The one-word outcome of an uninstall/enable/disable decision (pure).
pub fn entry_outcome(result: &str, plan: &EntryPlan, op: EntryOp) -> &'static str {
    if result == "failed" {
        return "failed";
    }
    match (plan, op) {
        (EntryPlan::Remove, _) => "removed",
        (EntryPlan::Enable, _) => "enabled",
        (EntryPlan::Disable, _) => "disabled",
        (EntryPlan::Unchanged, _) => "unchanged",
        (EntryPlan::Absent, _) => "absent",
        (EntryPlan::SkipForeign, _) => "conflict",
    }
}

fn policy(options: &InstallOptions) -> Result<InstallPolicy, Error> {
    let flags = match &options.flags {
        Some(text) => Some(crate::model::Flags::parse(text).map_err(|e| {
            Error::InvalidArgument(format!("flags {text:?}: {e}; use letters from P, O, C, F"))
        })?),
        None => None,
    };
    Ok(InstallPolicy {
        flags,
        force: options.force,
        allow_dynamic: options.allow_dynamic,
        ..InstallPolicy::default()
    })
}

impl OpsBackend {
    /// Loads the catalog (with drop-ins) and takes the host facts once.
    pub fn new(paths: Paths) -> Result<Self, crate::catalog::CatalogError> {
        let ctx = Context::system(paths)?;
        let host = ctx.host();
        Ok(OpsBackend {
            host: HostView {
                architecture: host.machine.uname.clone(),
                native_platforms: host.native_platforms.clone(),
            },
            ctx,
            supported: Mutex::new(None),
        })
    }

    fn supported_for(&self, handlers: &[HandlerInfo]) -> Vec<String> {
        let mut cache = self.supported.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, list)) = cache.as_ref() {
            if seen == handlers {
                return list.clone();
            }
        }
        let list = match ops::platforms(&self.ctx) {
            Ok(report) => report.platforms,
            Err(e) => {
                tracing::warn!("cannot verify platforms: {e}");
                Vec::new()
            }
        };
        *cache = Some((handlers.to_vec(), list.clone()));
        list
    }

    fn entries(&self, platforms: &[String], op: EntryOp) -> Result<Vec<ItemReport>, Error> {
        let report = ops::change_entries(&self.ctx, &platforms.join(","), op, false, false)
            .map_err(ops_error)?;
        Ok(report
            .entries
            .into_iter()
            .map(|r| ItemReport {
                platform: String::new(),
                handler: r
                    .decision
                    .handler
                    .clone()
                    .unwrap_or_else(|| r.decision.name.clone()),
                outcome: entry_outcome(r.result, &r.decision.plan, op).into(),
                message: r
                    .error
                    .unwrap_or_else(|| format!("entry {}", r.decision.name)),
            })
            .collect())
    }
}

impl Backend for OpsBackend {
    fn canonical(&self, word: &str) -> String {
        self.ctx.catalog.canonical(word)
    }

    fn observe(&self) -> Result<Observed, Error> {
        let status = ops::status(&self.ctx).map_err(ops_error)?;
        let handlers: Vec<HandlerInfo> = status
            .entries
            .iter()
            .map(|s| HandlerInfo {
                name: s.entry.name.clone(),
                platform: s.platform.clone().unwrap_or_default(),
                interpreter: s.entry.interpreter.display().to_string(),
                flags: s.entry.flags.to_string(),
                enabled: s.entry.enabled,
                owner: s.owner.clone(),
                wins: s.wins,
            })
            .collect();
        let supported = if status.mounted {
            self.supported_for(&handlers)
        } else {
            Vec::new()
        };
        Ok(Observed {
            host_architecture: self.host.architecture.clone(),
            native_platforms: self.host.native_platforms.clone(),
            supported_platforms: supported,
            mounted: status.mounted,
            global_status: match (status.mounted, status.enabled) {
                (false, _) => "not-mounted",
                (true, true) => "enabled",
                (true, false) => "disabled",
            }
            .into(),
            handlers,
        })
    }

    fn install(
        &self,
        platforms: &[String],
        options: &InstallOptions,
    ) -> Result<Vec<ItemReport>, Error> {
        let request = ops::InstallRequest {
            list: platforms.join(","),
            policy: policy(options)?,
            dry_run: false,
            persist: options.persist,
            verify: options.verify,
        };
        let report = ops::install(&self.ctx, &request).map_err(ops_error)?;
        Ok(report
            .handlers
            .into_iter()
            .map(|h| ItemReport {
                outcome: install_outcome(h.result, &h.plan.action).into(),
                message: install_message(&h.plan.action, h.error.as_deref()),
                platform: h.plan.platform,
                handler: h.plan.handler,
            })
            .collect())
    }

    fn uninstall(
        &self,
        platforms: &[String],
        _options: &UninstallOptions,
    ) -> Result<Vec<ItemReport>, Error> {
        self.entries(platforms, EntryOp::Remove)
    }

    fn doctor(&self, fd: std::os::fd::OwnedFd, name: &str) -> Result<String, Error> {
        let mut cache = self.ctx.cache();
        let host = self.ctx.host_with(&mut cache, true);
        let dctx = crate::doctor::context::DoctorContext::from_system(
            self.ctx.kernel.as_ref(),
            self.ctx.catalog.clone(),
            &host,
        );
        // Loaders and libraries are looked up in the daemon's own root, never in a path a
        // caller names.
        let options = crate::doctor::FdOptions {
            root: std::path::PathBuf::from("/"),
            name: name.to_string(),
            public_only: true,
        };
        let report = crate::doctor::execute_fd(fd, &options, &dctx)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        serde_json::to_string(&report)
            .map_err(|e| Error::Failed(format!("cannot encode the doctor report: {e}")))
    }

    fn set_enabled(&self, platforms: &[String], enabled: bool) -> Result<Vec<ItemReport>, Error> {
        self.entries(
            platforms,
            if enabled {
                EntryOp::Enable
            } else {
                EntryOp::Disable
            },
        )
    }
}
