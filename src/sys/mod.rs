//! System plumbing at the bottom of the crate: namespaces, helper processes, version queries.
//!
//! Nothing here imports another binfmtd module; every layer above may use it. Inside, the
//! order is release → ns → exec → version (each uses only those before it).

pub mod exec;
pub mod idmap;
pub mod ns;
pub mod release;
pub mod version;
