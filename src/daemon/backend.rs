//! The seam between the daemon and the engine: what the daemon needs, in engine types.

use crate::catalog::Selection;
use crate::engine::{EntriesRequest, InstallRequest, Item};
use crate::ops::OpsError;
use crate::persist::desired::Recorded;

/// One binfmt_misc entry as the daemon shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerView {
    pub name: String,
    /// OCI platform it serves, empty when unknown.
    pub platform: String,
    pub interpreter: String,
    /// Flags as the kernel reports them.
    pub flags: String,
    pub enabled: bool,
    /// `binfmtd`, who else registered it, or `unknown`.
    pub owner: String,
    /// The kernel uses this entry for its magic.
    pub wins: bool,
}

/// Everything the read-only properties show, taken in one look at host and kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub host_architecture: String,
    pub native_platforms: Vec<String>,
    pub supported_platforms: Vec<String>,
    pub mounted: bool,
    /// `enabled`, `disabled` or `not-mounted`.
    pub global_status: String,
    /// Newest first, as the kernel tries them.
    pub handlers: Vec<HandlerView>,
}

/// What the last verification of platforms found (engine and persist types only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verified {
    pub platforms: Vec<crate::persist::daemon_status::PlatformState>,
    /// When it ran (Unix seconds) and how long its probes took.
    pub at: Option<f64>,
    pub probe_seconds: Option<f64>,
    pub interpreters: Vec<crate::persist::daemon_status::InterpreterState>,
}

/// Why a daemon operation failed, by kind; the D-Bus adapter maps each to an error name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    UnknownPlatform(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Kernel(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Failed(String),
}

impl From<OpsError> for ServiceError {
    fn from(e: OpsError) -> Self {
        let text = e.to_string();
        match e {
            OpsError::Select(_) => ServiceError::UnknownPlatform(text),
            OpsError::Kernel(_) => ServiceError::Kernel(text),
            _ => ServiceError::Failed(text),
        }
    }
}

/// The engine, blocking. The daemon calls it from a blocking thread, one mutating call at
/// a time. Every call is idempotent: installing what is installed reports `unchanged`.
pub trait Backend: Send + Sync + 'static {
    fn observe(&self) -> Result<Observed, ServiceError>;
    /// Parses request words into a selection (the catalog knows the names).
    fn select(&self, words: &[String]) -> Result<Selection, ServiceError>;
    fn install(&self, req: &InstallRequest) -> Result<Vec<Item>, ServiceError>;
    fn change(&self, req: &EntriesRequest) -> Result<Vec<Item>, ServiceError>;
    /// Applies the desired state (config + recorded requests).
    /// Platforms in `skip` are not tried again (see `engine::reconcile`).
    fn reconcile(
        &self,
        skip: &std::collections::BTreeSet<String>,
    ) -> Result<crate::engine::Kept, ServiceError>;
    /// Diagnoses the already-open file `fd` (shown as `name`); returns the report as JSON.
    fn doctor(&self, fd: std::os::fd::OwnedFd, name: &str) -> Result<String, ServiceError>;
    /// The recorded requests, for answering a no-op Install without the lock.
    fn recorded(&self) -> Option<Recorded>;
    /// Every process running under an emulator that `viewer` may see (one pass, or two
    /// samples `window` apart).
    fn list_emulated(
        &self,
        viewer: crate::procs::Viewer,
        window: std::time::Duration,
    ) -> Result<crate::procs::Report, ServiceError>;
    /// The last verification [`Backend::observe`] made (none for backends that do not probe).
    fn verified(&self) -> Verified {
        Verified::default()
    }
}
