//! What doctor needs to know about the host and the kernel, and how to read it from the system.

use crate::catalog::Catalog;
use crate::kernel::{Binfmt, Snapshot};
use serde::Serialize;
use std::path::PathBuf;

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
    /// Reads the snapshot of `kernel`'s instance (an unreadable one becomes an unmounted
    /// snapshot that says why); host facts come from `host`.
    pub fn from_system(
        kernel: &dyn Binfmt,
        catalog: Catalog,
        host: &crate::host::HostReport,
    ) -> DoctorContext {
        let snapshot = kernel.snapshot().unwrap_or_else(|e| Snapshot {
            path: kernel.path(),
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
        }
    }
}
