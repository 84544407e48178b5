//! Tiny per-ISA probe programs that just exit, and the code that runs them.

pub mod batch;
mod channel;
pub mod elf;
pub mod isa;
pub mod isa_code;
pub mod native;
pub mod run;
pub mod sweep;

pub use isa::{exit_program, lookup, supported_arches, Isa};

#[cfg(test)]
mod tests;
