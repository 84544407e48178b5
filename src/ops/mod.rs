//! What every operation shares: its context (paths, catalog, kernel and probe seams, state),
//! read-only views (status, platforms, readiness) and verification; changes are in `crate::engine`.

pub mod context;
pub mod ready;
pub mod status;
pub mod verify;

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
    #[error(transparent)]
    Desired(#[from] crate::persist::desired::DesiredError),
    /// A change that could not finish and was undone; `detail` says what was undone.
    #[error("{source}; {detail}")]
    RolledBack {
        #[source]
        source: Box<OpsError>,
        detail: String,
    },
}
