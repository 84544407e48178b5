//! Paths binfmtd touches, each with a default and an environment/option override.

use serde::Serialize;
use std::path::PathBuf;

/// Every location binfmtd reads or writes. Tests and the sandbox point these elsewhere.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Paths {
    /// Mount point of binfmt_misc (`BINFMTD_BINFMT_MISC`).
    pub binfmt_misc: PathBuf,
    /// Ownership state (`BINFMTD_STATE_DIR`).
    pub state_dir: PathBuf,
    /// Configuration, with `interpreters.d/` drop-ins (`BINFMTD_CONFIG_DIR`).
    pub config_dir: PathBuf,
    /// Where `--persist` writes systemd binfmt.d files (`BINFMTD_BINFMT_D_DIR`).
    pub binfmt_d_dir: PathBuf,
}

/// The mount point of binfmt_misc; defined once, by the kernel layer.
pub const DEFAULT_BINFMT_MISC: &str = crate::kernel::DEFAULT_PATH;
pub const DEFAULT_STATE_DIR: &str = "/var/lib/binfmtd";
pub const DEFAULT_CONFIG_DIR: &str = "/etc/binfmtd";
pub const DEFAULT_BINFMT_D_DIR: &str = "/etc/binfmt.d";

impl Default for Paths {
    fn default() -> Self {
        Paths {
            binfmt_misc: DEFAULT_BINFMT_MISC.into(),
            state_dir: DEFAULT_STATE_DIR.into(),
            config_dir: DEFAULT_CONFIG_DIR.into(),
            binfmt_d_dir: DEFAULT_BINFMT_D_DIR.into(),
        }
    }
}

impl Paths {
    /// Directory of handler drop-ins that override embedded ones by file name.
    pub fn interpreters_d(&self) -> PathBuf {
        self.config_dir.join("interpreters.d")
    }
}
