//! The real [`Backend`]: the engine and read-only views on the real system paths.

use super::backend::{Backend, HandlerView, Observed, ServiceError, Verified};
use crate::catalog::Selection;
use crate::config::Paths;
use crate::engine::{self, EntriesRequest, InstallRequest, Item};
use crate::ops::{self, Context};
use crate::persist::daemon_status;
use crate::persist::desired::Recorded;
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
    supported: Mutex<Option<(Vec<HandlerView>, Vec<String>)>>,
    /// What that verification found, for readiness and metrics.
    verified: Mutex<Verified>,
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
            verified: Mutex::new(Verified::default()),
        })
    }

    fn supported_for(&self, handlers: &[HandlerView]) -> Vec<String> {
        let mut cache = self.supported.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, list)) = cache.as_ref() {
            if seen == handlers {
                return list.clone();
            }
        }
        let list = match ops::platforms(&self.ctx) {
            Ok(report) => {
                *self.verified.lock().unwrap_or_else(|p| p.into_inner()) =
                    self.verification(&report);
                report.platforms
            }
            Err(e) => {
                tracing::warn!("cannot verify platforms: {e}");
                Vec::new()
            }
        };
        *cache = Some((handlers.to_vec(), list.clone()));
        list
    }
}

impl OpsBackend {
    /// The platforms report in the daemon's record's terms.
    fn verification(&self, report: &ops::status::PlatformsReport) -> Verified {
        let (platforms, interpreters) = ops::ready::record_of(report, &self.ctx.cache());
        Verified {
            platforms,
            at: Some(daemon_status::now()),
            probe_seconds: report.probe_seconds,
            interpreters,
        }
    }
}

impl Backend for OpsBackend {
    fn select(&self, words: &[String]) -> Result<Selection, ServiceError> {
        engine::request::select(&self.ctx.catalog, words)
            .map_err(|e| ServiceError::UnknownPlatform(e.to_string()))
    }

    fn observe(&self) -> Result<Observed, ServiceError> {
        let status = ops::status(&self.ctx)?;
        let handlers: Vec<HandlerView> = status
            .entries
            .iter()
            .map(|s| HandlerView {
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

    fn install(&self, req: &InstallRequest) -> Result<Vec<Item>, ServiceError> {
        Ok(engine::install(&self.ctx, req)?.items())
    }

    fn change(&self, req: &EntriesRequest) -> Result<Vec<Item>, ServiceError> {
        Ok(engine::change_entries(&self.ctx, req)?.items(req.op))
    }

    fn reconcile(
        &self,
        skip: &std::collections::BTreeSet<String>,
    ) -> Result<engine::Kept, ServiceError> {
        engine::reconcile(&self.ctx, skip).map_err(|e| ServiceError::Failed(e.to_string()))
    }

    fn recorded(&self) -> Option<Recorded> {
        self.ctx.state.load_desired().ok()
    }

    fn list_emulated(
        &self,
        viewer: crate::procs::Viewer,
        window: std::time::Duration,
    ) -> Result<crate::procs::Report, ServiceError> {
        let opts = crate::procs::ScanOptions {
            window,
            container: None,
            viewer,
            host_arch: std::env::consts::ARCH.to_string(),
        };
        let interps = crate::procs::guest::Interpreters::from_catalog(&self.ctx.catalog);
        let src = crate::procs::source::LiveProc::new();
        crate::procs::scan(&src, &interps, &opts).map_err(|e| ServiceError::Failed(e.to_string()))
    }

    fn verified(&self) -> Verified {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn doctor(&self, fd: std::os::fd::OwnedFd, name: &str) -> Result<String, ServiceError> {
        let mut cache = self.ctx.cache();
        let host = self.ctx.host_with(&mut cache, true);
        let dctx = crate::doctor::context::DoctorContext::from_system(
            self.ctx.kernel.as_ref(),
            self.ctx.catalog.clone(),
            &host,
        )
        .with_ownership(&self.ctx.state.peek().state);
        // Loaders and libraries are looked up in the daemon's own root, never in a path a
        // caller names.
        let options = crate::doctor::FdOptions {
            root: std::path::PathBuf::from("/"),
            name: name.to_string(),
            public_only: true,
        };
        let report = crate::doctor::execute_fd(fd, &options, &dctx)
            .map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        serde_json::to_string(&report)
            .map_err(|e| ServiceError::Failed(format!("cannot encode the doctor report: {e}")))
    }
}
