//! `binfmtd doctor`: explain why a foreign binary or a whole root will fail under emulation.

pub mod checks;
pub mod checks_cpu;
pub mod context;
pub mod defects;
pub mod elf;
pub mod findings;
pub mod inspect;
pub mod libs;
pub mod rootfs;
pub mod sniff;
#[cfg(test)]
pub(crate) mod testelf;
