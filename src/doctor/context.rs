//! What doctor needs to know about the host and the kernel, and how to read it from the system.

use crate::catalog::Catalog;
use crate::kernel::{Binfmt, Snapshot};
use serde::Serialize;
use std::collections::BTreeSet;
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
    /// Release of the running kernel (`uname -r`): some translators break on newer kernels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
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
            kernel: Some(r.kernel.release.clone()).filter(|k| !k.is_empty()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{EntryAction, KernelError, MemoryBinfmt};
    use crate::model::Rule;

    /// An instance whose every read fails, as a mounted but unreadable one does.
    struct Unreadable;

    impl Binfmt for Unreadable {
        fn path(&self) -> PathBuf {
            PathBuf::from("/unreadable")
        }
        fn snapshot(&self) -> Result<Snapshot, KernelError> {
            Err(KernelError::Permission {
                path: self.path().join("status"),
                hint: "test".into(),
            })
        }
        fn register(&self, _: &Rule) -> Result<(), KernelError> {
            unreachable!("doctor never registers")
        }
        fn act(&self, _: &str, _: EntryAction) -> Result<(), KernelError> {
            unreachable!("doctor never changes entries")
        }
        fn set_enabled(&self, _: bool) -> Result<(), KernelError> {
            unreachable!("doctor never changes the status")
        }
        fn ensure_mounted(&self) -> Result<bool, KernelError> {
            unreachable!("doctor never mounts")
        }
    }

    fn arm64_host(catalog: &Catalog) -> crate::host::HostReport {
        let facts = crate::host::HostFacts {
            machine: "aarch64".into(),
            kernel_release: "6.8.0".into(),
            page_size: 16384,
            native_probes: Some(vec![("aarch64".into(), true), ("arm".into(), false)]),
            ..Default::default()
        };
        crate::host::detect(&facts, catalog)
    }

    /// A memory instance with these catalog handlers registered, newest last in `names`.
    fn memory(names: &[&str], enabled: bool) -> MemoryBinfmt {
        let catalog = Catalog::embedded().expect("embedded catalog");
        let kernel = MemoryBinfmt::new(vec![]);
        for n in names {
            let h = catalog.get(n).expect("catalog handler");
            let rule = h.rule(
                &PathBuf::from(format!("/usr/bin/{n}-static")),
                h.default_flags().expect("valid flags"),
            );
            kernel.register(&rule).expect("register in memory");
        }
        kernel.set_enabled(enabled).expect("status in memory");
        kernel
    }

    /// (case, instance, mounted, enabled, entry names newest first, unreadable)
    type Case = (
        &'static str,
        Box<dyn Binfmt>,
        bool,
        bool,
        &'static [&'static str],
        bool,
    );

    #[test]
    fn context_reads_the_instance_through_the_seam() {
        let catalog = Catalog::embedded().expect("embedded catalog");
        let host = arm64_host(&catalog);
        let table: [Case; 4] = [
            ("empty", Box::new(memory(&[], true)), true, true, &[], false),
            (
                "two entries",
                Box::new(memory(&["qemu-riscv64", "qemu-x86_64"], true)),
                true,
                true,
                &["qemu-x86_64", "qemu-riscv64"],
                false,
            ),
            (
                "disabled",
                Box::new(memory(&["qemu-riscv64"], false)),
                true,
                false,
                &["qemu-riscv64"],
                false,
            ),
            ("unreadable", Box::new(Unreadable), false, false, &[], true),
        ];
        for (case, kernel, mounted, enabled, names, unreadable) in table {
            let ctx = DoctorContext::from_system(kernel.as_ref(), catalog.clone(), &host);
            let s = &ctx.snapshot;
            assert_eq!((s.mounted, s.enabled), (mounted, enabled), "{case}");
            let got: Vec<&str> = s.entries.iter().map(|e| e.name.as_str()).collect();
            assert_eq!(got, names, "{case}");
            assert_eq!(s.path, kernel.path(), "{case}");
            assert_eq!(!s.unreadable.is_empty(), unreadable, "{case}");
            if unreadable {
                assert!(s.unreadable[0].1.contains("/unreadable/status"), "{case}");
            }
            assert_eq!(ctx.host.arch, "aarch64", "{case}");
            assert_eq!(ctx.host.native, ["aarch64"], "{case}");
            assert_eq!(ctx.host.page_size, 16384, "{case}");
            assert_eq!(ctx.host_root, PathBuf::from("/"), "{case}");
        }
    }
}
