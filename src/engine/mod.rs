//! The one change engine behind every door (CLI, D-Bus, daemon config, drift repair):
//! typed requests with binfmtd's defaults, typed outcomes, and one transaction —
//! record intent → apply → verify → persist — undone on failure. Knows no transport.

pub mod desired;
pub mod entries;
pub mod install;
pub mod keep;
pub mod outcome;
pub mod request;
pub mod steps;
mod verify;

pub use entries::{change_entries, EntriesReport, EntryResult};
pub use install::{install, HandlerResult, InstallReport};
pub use keep::{reconcile, KeepError, Kept};
pub use outcome::{Item, Outcome, Status};
pub use request::{EntriesRequest, InstallOptions, InstallRequest, Origin};

#[cfg(test)]
#[path = "install_tests.rs"]
mod install_tests;

#[cfg(test)]
#[path = "fault_tests.rs"]
mod fault_tests;
