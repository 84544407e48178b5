//! Durable records: which entries binfmtd owns (state), what is wanted (desired state),
//! systemd binfmt.d files and Debian binfmt-support's files.

pub mod atomic;
pub mod binfmt_d;
pub mod binfmt_support;
pub mod cache;
pub mod daemon_status;
pub mod desired;
pub mod export;
pub mod state;

pub use state::{OwnedEntry, Pending, State, StateStore};
