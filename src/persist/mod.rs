//! Durable records: which entries binfmtd owns (state), and systemd binfmt.d files.

pub mod atomic;
pub mod binfmt_d;
pub mod cache;
pub mod state;

pub use state::{OwnedEntry, State, StateStore};
