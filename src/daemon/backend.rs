//! The seam between the daemon and the core operations: what the daemon needs from them.

use crate::dbus::errors::Error;
use crate::dbus::types::{HandlerInfo, InstallOptions, ItemReport, UninstallOptions};

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
    pub handlers: Vec<HandlerInfo>,
}

/// The core operations, blocking. The daemon calls them from a blocking thread, one
/// mutating call at a time. Every call is idempotent: installing what is installed reports
/// `unchanged` and writes nothing.
pub trait Backend: Send + Sync + 'static {
    fn observe(&self) -> Result<Observed, Error>;
    fn install(
        &self,
        platforms: &[String],
        options: &InstallOptions,
    ) -> Result<Vec<ItemReport>, Error>;
    fn uninstall(
        &self,
        platforms: &[String],
        options: &UninstallOptions,
    ) -> Result<Vec<ItemReport>, Error>;
    fn set_enabled(&self, platforms: &[String], enabled: bool) -> Result<Vec<ItemReport>, Error>;
    /// Diagnoses the already-open file `fd` (shown as `name`); returns the report as JSON.
    fn doctor(&self, fd: std::os::fd::OwnedFd, name: &str) -> Result<String, Error>;
    /// The desired-state key of a platform word: its handler name where the catalog knows it.
    fn canonical(&self, word: &str) -> String {
        word.to_string()
    }
}
