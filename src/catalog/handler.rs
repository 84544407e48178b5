//! One handler definition as written in an `interpreters/NAME.toml` file (shared with the
//! build script, which parses the embedded files at compile time: serde only, no crate code).

use serde::{Deserialize, Serialize};

/// Which program family translates the foreign code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Translator {
    Qemu,
    Rosetta,
    Fex,
    Box64,
}

/// One handler definition, as written in an `interpreters/NAME.toml` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handler {
    /// Entry name registered in binfmt_misc, e.g. `qemu-aarch64`.
    pub name: String,
    pub translator: Translator,
    /// QEMU's name for the ISA this handler runs, e.g. `aarch64`, `arm`, `x86_64`.
    pub arch: String,
    /// QEMU's family: ISAs a CPU of the family may run natively.
    pub family: String,
    /// OCI platforms served, e.g. `linux/arm64`.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Other names users type: uname, Debian and Go architecture names.
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub offset: usize,
    /// `\xHH`-escaped magic bytes, as in QEMU's table.
    pub magic: String,
    /// `\xHH`-escaped mask, same length as the magic.
    #[serde(default)]
    pub mask: Option<String>,
    /// Candidate interpreters: bare names are looked up in `$PATH` and standard directories.
    pub interpreters: Vec<String>,
    /// Default flags, e.g. `F`.
    #[serde(default)]
    pub flags: String,
    /// Free-form remark shown by `status`.
    #[serde(default)]
    pub description: String,
}
