//! Tiny per-ISA probe programs that just exit, and the code that runs them.

pub mod isa;
pub mod native;
pub mod run;

pub use isa::exit_program;
