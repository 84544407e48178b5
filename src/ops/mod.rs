//! Operations that tie the stages together: detect, plan, apply through the kernel seam, verify.

pub mod apply;
pub mod context;
pub mod status;
pub mod verify;

pub use apply::{change_entries, install, EntriesReport, InstallReport, InstallRequest};
pub use context::Context;
pub use status::{platforms, status, PlatformsReport, StatusReport};

/// Failures of a whole operation (per-handler failures are in the reports instead).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Select(#[from] crate::catalog::SelectError),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(transparent)]
    Kernel(#[from] crate::kernel::KernelError),
    #[error(transparent)]
    State(#[from] crate::persist::state::StateError),
}
