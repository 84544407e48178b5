//! What doctor needs to know about the host and the kernel, and how to read it from the system.

use crate::catalog::Catalog;
use crate::kernel::{Binfmt, ProcBinfmt, Snapshot};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Host facts that change the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// The host ISA under its QEMU name, e.g. `x86_64`, `aarch64`.
    pub arch: String,
    /// QEMU arch names the CPU runs without emulation.
    pub native: Vec<String>,
    pub page_size: u64,
    /// x86-64 micro-architecture level of the host CPU (1..=4), on x86-64 hosts.
    pub x86_64_level: Option<u8>,
}

/// Everything `doctor::execute` needs besides its arguments.
#[derive(Debug, Clone)]
pub struct DoctorContext {
    pub snapshot: Snapshot,
    pub catalog: Catalog,
    pub host: HostFacts,
    /// The host's `/`, from which F-flag interpreters are read. Tests point it elsewhere.
    pub host_root: PathBuf,
    /// Kernel entries binfmtd registered and still owns (see [`DoctorContext::with_ownership`]);
    /// empty when unknown. Fixes for these need no `--force`.
    pub owned: BTreeSet<String>,
}

impl HostFacts {
    /// The facts doctor needs, taken from the host report (native ISAs are probed there).
    pub fn from_report(r: &crate::host::HostReport) -> HostFacts {
        HostFacts {
            arch: r
                .machine
                .qemu
                .clone()
                .unwrap_or_else(|| r.machine.uname.clone()),
            native: r.native.clone(),
            page_size: r.page_size,
            x86_64_level: r.x86_64_level,
        }
    }
}

impl DoctorContext {
    /// Reads the kernel snapshot at `binfmt_path`; host facts come from `host`.
    pub fn from_system(
        binfmt_path: &Path,
        catalog: Catalog,
        host: &crate::host::HostReport,
    ) -> DoctorContext {
        let snapshot = ProcBinfmt::new(binfmt_path)
            .snapshot()
            .unwrap_or_else(|e| Snapshot {
                path: binfmt_path.to_path_buf(),
                mounted: false,
                enabled: false,
                entries: vec![],
                unreadable: vec![("(instance)".into(), e.to_string())],
            });
        DoctorContext {
            snapshot,
            catalog,
            host: HostFacts::from_report(host),
            host_root: PathBuf::from("/"),
            owned: BTreeSet::new(),
        }
    }

    /// Marks the snapshot's entries that binfmtd owns according to `state` (the exact register
    /// line recorded in state.json), so fixes suggest `--force` only for other tools' entries.
    pub fn with_ownership(mut self, state: &crate::persist::state::State) -> Self {
        self.owned = self
            .snapshot
            .entries
            .iter()
            .filter(|e| state.owns(e))
            .map(|e| e.name.clone())
            .collect();
        self
    }
}
