//! Host detection: facts are gathered by a thin reader, and decided on by pure functions.

pub mod detect;
pub mod facts;

pub use detect::{detect, HostReport};
pub use facts::HostFacts;
