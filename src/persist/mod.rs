//! Durable records: which entries binfmtd owns (state), what is wanted (desired state), and
//! systemd binfmt.d files.

pub mod atomic;
pub mod binfmt_d;
pub mod cache;
pub mod desired;
pub mod state;

pub use state::{OwnedEntry, Pending, State, StateStore};
