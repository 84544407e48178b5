//! `binfmtd doctor`: explain why a foreign binary or a whole root will fail under emulation.

pub mod elf;
pub mod findings;
pub mod rootfs;
pub mod sniff;
#[cfg(test)]
pub(crate) mod testelf;
