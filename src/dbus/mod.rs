//! The D-Bus face of binfmtd: `org.binfmtd1` at `/org/binfmtd1`, interface `org.binfmtd1.Manager`.

pub mod auth;
pub mod client;
pub mod doctor;
pub mod errors;
pub mod interface;
pub mod proxy;
pub mod serve;
pub mod types;

/// Well-known bus name the daemon owns.
pub const BUS_NAME: &str = "org.binfmtd1";
/// Object path of the manager.
pub const OBJECT_PATH: &str = "/org/binfmtd1";
/// Interface name of the manager.
pub const INTERFACE: &str = "org.binfmtd1.Manager";
