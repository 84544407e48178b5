//! System plumbing at the bottom of the crate: namespaces, helper processes, version queries.
//!
//! Nothing here imports another binfmtd module; every layer above may use it.

pub mod exec;
pub mod ns;
pub mod version;
