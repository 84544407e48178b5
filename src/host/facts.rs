//! Gathers raw host facts (uname, procfs, probes, Rosetta shares) without deciding anything.

use crate::kernel::{Binfmt, KernelError, Snapshot};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where Apple's Rosetta share is mounted by the VM managers we know.
pub const ROSETTA_SHARES: &[&str] = &[
    "/media/rosetta",
    "/mnt/lima-rosetta",
    "/mnt",
    "/run/rosetta",
];

/// How long a helper asked for its version may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(2);

/// One place Rosetta might be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosettaFact {
    pub path: PathBuf,
    pub executable: bool,
    /// The share is a virtiofs mount, as Apple's Virtualization.framework provides.
    pub virtiofs: bool,
    /// The `version: Rosetta-NNN` line Rosetta prints when run with no arguments.
    pub version: Option<String>,
}

/// Everything detection needs, as observed. Built by [`gather`] or by tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// `uname -m`.
    pub machine: String,
    /// `uname -r`.
    pub kernel_release: String,
    pub page_size: u64,
    /// binfmt_misc is listed in /proc/filesystems.
    pub binfmt_supported: bool,
    pub binfmt_mounted: bool,
    /// Contents of `status`, when mounted.
    pub binfmt_enabled: Option<bool>,
    /// Container manager name, when we run inside one.
    pub container: Option<String>,
    /// `/proc/self/uid_map` is not the identity map of the initial namespace.
    pub nested_userns: bool,
    /// CPU feature flags (x86 `flags`, arm `Features`).
    pub cpu_flags: Vec<String>,
    /// Exit of each ISA's probe in an empty private binfmt_misc instance: (qemu arch, ran).
    pub native_probes: Option<Vec<(String, bool)>>,
    /// Without private instances: probes run directly for the ISAs that no binfmt_misc entry
    /// of the current instance would take (so only the CPU could run them): (arch, ran).
    #[serde(default)]
    pub host_probes: Vec<(String, bool)>,
    /// Why probes could not be run, when they could not.
    pub probe_error: Option<String>,
    pub rosetta: Vec<RosettaFact>,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Container detection from the usual markers.
fn container() -> Option<String> {
    if let Some(c) = read("/run/systemd/container") {
        return Some(c.trim().to_string());
    }
    if Path::new("/run/.containerenv").exists() {
        return Some("podman".into());
    }
    if Path::new("/.dockerenv").exists() {
        return Some("docker".into());
    }
    if let Ok(env) = std::fs::read("/proc/1/environ") {
        for var in env.split(|b| *b == 0) {
            if let Some(v) = var.strip_prefix(b"container=") {
                return Some(String::from_utf8_lossy(v).into_owned());
            }
        }
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return Some("kubernetes".into());
    }
    None
}

fn cpu_flags() -> Vec<String> {
    use std::io::BufRead;
    // Only the first CPU's block is needed; /proc/cpuinfo is large on big machines.
    let Ok(f) = std::fs::File::open("/proc/cpuinfo") else {
        return vec![];
    };
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .and_then(|l| {
            l.split_once(':')
                .map(|(_, v)| v.split_whitespace().map(str::to_string).collect())
        })
        .unwrap_or_default()
}

fn is_virtiofs(dir: &Path) -> bool {
    // virtiofs reports the FUSE magic.
    const FUSE_SUPER_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x6573_5546);
    nix::sys::statfs::statfs(dir)
        .map(|s| s.filesystem_type() == FUSE_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Looks for Rosetta at each known share, and asks it for its version.
pub fn rosetta_facts() -> Vec<RosettaFact> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for share in ROSETTA_SHARES {
        let path = Path::new(share).join("rosetta");
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let executable = meta.is_file() && meta.permissions().mode() & 0o111 != 0;
        let version = executable
            .then(|| crate::sys::version::labelled(&path, &[], "version:", HELPER_TIMEOUT))
            .flatten();
        out.push(RosettaFact {
            path,
            executable,
            virtiofs: is_virtiofs(Path::new(share)),
            version,
        });
    }
    out
}

/// Runs native probes. [`SystemProber`] executes them; tests substitute answers.
pub trait NativeProber {
    /// Every arch's probe in an empty private instance: (arch, ran), or why that failed.
    fn private_instance(&self, arches: &[String]) -> Result<Vec<(String, bool)>, String>;
    /// These arches' probes, run directly in the current instance: (arch, ran).
    fn direct(&self, arches: &[String]) -> Vec<(String, bool)>;
}

/// Executes the probes on this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemProber;

impl NativeProber for SystemProber {
    fn private_instance(&self, arches: &[String]) -> Result<Vec<(String, bool)>, String> {
        crate::probe::native::run_native_probes(arches).map_err(|e| e.to_string())
    }
    fn direct(&self, arches: &[String]) -> Vec<(String, bool)> {
        crate::probe::native::run_direct_probes(arches)
    }
}

/// binfmt_misc as `snapshot` shows it: (mounted, status when mounted). A snapshot fails only
/// while reading an instance that is mounted.
pub fn binfmt_state(snapshot: &Result<Snapshot, KernelError>) -> (bool, Option<bool>) {
    match snapshot {
        Ok(s) => (s.mounted, s.mounted.then_some(s.enabled)),
        Err(_) => (true, None),
    }
}

/// The probe results of [`HostFacts`]; the fields mean the same there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeFacts {
    pub native_probes: Option<Vec<(String, bool)>>,
    pub host_probes: Vec<(String, bool)>,
    pub probe_error: Option<String>,
}

/// The probe facts. Cached results win. When no enabled entry of a mounted instance takes
/// any probe (a fresh or disabled instance, the cold start), the probes run directly: only
/// the CPU can run them there, so the answer is exact without a namespace, provided the
/// instance still takes none of them afterwards (`recheck`, the race with a registration).
/// Else probes run in a private instance; failing that, only the arches no entry would take
/// are run directly.
pub fn probe_facts(
    snapshot: &Result<Snapshot, KernelError>,
    probe_arches: &[String],
    cached_native: Option<Vec<(String, bool)>>,
    prober: &dyn NativeProber,
    recheck: &dyn Fn() -> Option<Snapshot>,
) -> ProbeFacts {
    let exact_direct = || {
        let s = snapshot.as_ref().ok().filter(|s| s.mounted)?;
        let unhandled = crate::probe::native::unhandled_arches(probe_arches, Some(s));
        let with_probe = crate::probe::native::unhandled_arches(probe_arches, None);
        if unhandled != with_probe {
            return None;
        }
        let results = prober.direct(&unhandled);
        let after = recheck().filter(|s| s.mounted)?;
        (crate::probe::native::unhandled_arches(probe_arches, Some(&after)) == with_probe)
            .then_some(results)
    };
    let (native_probes, probe_error) = match cached_native.or_else(exact_direct) {
        Some(r) => (Some(r), None),
        None => match prober.private_instance(probe_arches) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e)),
        },
    };
    let host_probes = if native_probes.is_none() {
        let unhandled =
            crate::probe::native::unhandled_arches(probe_arches, snapshot.as_ref().ok());
        prober.direct(&unhandled)
    } else {
        Vec::new()
    };
    ProbeFacts {
        native_probes,
        host_probes,
        probe_error,
    }
}

/// Reads every fact from the running system; binfmt_misc through `kernel`. Probes need a
/// user namespace; when that fails, `native_probes` is `None` and `probe_error` says why.
/// `cached_native` short-cuts the probes with results from earlier in this boot.
pub fn gather(
    kernel: &dyn Binfmt,
    probe_arches: &[String],
    cached_native: Option<Vec<(String, bool)>>,
) -> HostFacts {
    gather_with(kernel, probe_arches, cached_native, &SystemProber)
}

/// [`gather`] with a chosen prober.
pub fn gather_with(
    kernel: &dyn Binfmt,
    probe_arches: &[String],
    cached_native: Option<Vec<(String, bool)>>,
    prober: &dyn NativeProber,
) -> HostFacts {
    let uts = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uts.as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map(|v| v as u64)
        .unwrap_or(4096);
    let snapshot = kernel.snapshot();
    let (binfmt_mounted, binfmt_enabled) = binfmt_state(&snapshot);
    let nested_userns = read("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false);
    let recheck = || kernel.snapshot().ok();
    let probes = probe_facts(&snapshot, probe_arches, cached_native, prober, &recheck);
    HostFacts {
        machine: field(|u| u.machine()),
        kernel_release: field(|u| u.release()),
        page_size,
        binfmt_supported: crate::kernel::mount::kernel_supports(),
        binfmt_mounted,
        binfmt_enabled,
        container: container(),
        nested_userns,
        cpu_flags: cpu_flags(),
        native_probes: probes.native_probes,
        host_probes: probes.host_probes,
        probe_error: probes.probe_error,
        rosetta: rosetta_facts(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{EntryAction, MemoryBinfmt, ProcBinfmt};
    use std::cell::RefCell;

    /// Answers as told and records which arches it was asked to run directly.
    struct FakeProber {
        private: Result<Vec<(String, bool)>, String>,
        private_calls: RefCell<usize>,
        direct_asked: RefCell<Vec<String>>,
    }

    impl FakeProber {
        fn new(private: Result<Vec<(String, bool)>, String>) -> Self {
            FakeProber {
                private,
                private_calls: RefCell::new(0),
                direct_asked: RefCell::new(Vec::new()),
            }
        }
    }

    impl NativeProber for FakeProber {
        fn private_instance(&self, _arches: &[String]) -> Result<Vec<(String, bool)>, String> {
            *self.private_calls.borrow_mut() += 1;
            self.private.clone()
        }
        fn direct(&self, arches: &[String]) -> Vec<(String, bool)> {
            self.direct_asked.borrow_mut().extend_from_slice(arches);
            arches.iter().map(|a| (a.clone(), a == "x86_64")).collect()
        }
    }

    fn arches() -> Vec<String> {
        ["aarch64", "arm", "riscv64", "x86_64"]
            .map(String::from)
            .to_vec()
    }

    /// An in-memory instance with qemu-aarch64 registered.
    fn with_aarch64() -> MemoryBinfmt {
        let catalog = crate::catalog::Catalog::embedded().expect("embedded catalog");
        let h = catalog.get("qemu-aarch64").expect("qemu-aarch64 handler");
        let flags = h.default_flags().expect("valid flags");
        let kernel = MemoryBinfmt::new(vec![]);
        kernel
            .register(&h.rule(Path::new("/usr/bin/qemu-aarch64-static"), flags))
            .expect("register in memory");
        kernel
    }

    fn disabled_entry() -> MemoryBinfmt {
        let k = with_aarch64();
        k.act("qemu-aarch64", EntryAction::Disable)
            .expect("disable");
        k
    }

    fn disabled_instance() -> MemoryBinfmt {
        let k = with_aarch64();
        k.set_enabled(false).expect("disable all");
        k
    }

    #[test]
    fn binfmt_state_comes_from_the_kernel_seam() {
        let empty = tempfile::tempdir().expect("tempdir");
        let unmounted = ProcBinfmt::new(empty.path());
        let unreadable: Result<Snapshot, KernelError> =
            Err(KernelError::NotMounted(PathBuf::from("/x")));
        type Case = (
            &'static str,
            Result<Snapshot, KernelError>,
            (bool, Option<bool>),
        );
        let table: [Case; 4] = [
            ("enabled", with_aarch64().snapshot(), (true, Some(true))),
            (
                "disabled",
                disabled_instance().snapshot(),
                (true, Some(false)),
            ),
            ("not mounted", unmounted.snapshot(), (false, None)),
            ("unreadable", unreadable, (true, None)),
        ];
        for (name, snapshot, want) in table {
            assert_eq!(binfmt_state(&snapshot), want, "{name}");
        }
    }

    type Results = Vec<(String, bool)>;
    /// (case, instance, instance after the direct probes, cached, private result, private
    /// runs, arches run directly, native answer)
    type Case = (
        &'static str,
        Snapshot,
        Snapshot,
        Option<Results>,
        Result<Results, String>,
        usize,
        &'static [&'static str],
        Option<&'static [&'static str]>,
    );

    fn snap(k: MemoryBinfmt) -> Snapshot {
        k.snapshot().expect("in-memory snapshot")
    }

    fn unmounted() -> Snapshot {
        Snapshot {
            mounted: false,
            ..snap(MemoryBinfmt::new(vec![]))
        }
    }

    #[test]
    fn probe_decisions_per_instance() {
        let no_ns = || Err("user namespaces disabled".to_string());
        let ns = || {
            Ok(vec![
                ("x86_64".to_string(), true),
                ("arm".to_string(), true),
            ])
        };
        let empty = || snap(MemoryBinfmt::new(vec![]));
        const ALL: &[&str] = &["aarch64", "arm", "riscv64", "x86_64"];
        const CPU: Option<&[&str]> = Some(&["x86_64"]);
        const NS: Option<&[&str]> = Some(&["x86_64", "arm"]);
        let cached = Some(vec![("aarch64".to_string(), true)]);
        let table: Vec<Case> = vec![
            (
                "cached",
                snap(with_aarch64()),
                snap(with_aarch64()),
                cached,
                no_ns(),
                0,
                &[],
                Some(&["aarch64"]),
            ),
            (
                "entry takes aarch64: private instance",
                snap(with_aarch64()),
                snap(with_aarch64()),
                None,
                ns(),
                1,
                &[],
                NS,
            ),
            (
                "entry takes aarch64, no namespaces",
                snap(with_aarch64()),
                snap(with_aarch64()),
                None,
                no_ns(),
                1,
                &["arm", "riscv64", "x86_64"],
                None,
            ),
            (
                "empty instance: direct is exact",
                empty(),
                empty(),
                None,
                ns(),
                0,
                ALL,
                CPU,
            ),
            (
                "entry disabled: direct is exact",
                snap(disabled_entry()),
                snap(disabled_entry()),
                None,
                no_ns(),
                0,
                ALL,
                CPU,
            ),
            (
                "instance disabled: direct is exact",
                snap(disabled_instance()),
                snap(disabled_instance()),
                None,
                no_ns(),
                0,
                ALL,
                CPU,
            ),
            (
                "registered meanwhile: private instance",
                empty(),
                snap(with_aarch64()),
                None,
                ns(),
                1,
                ALL,
                NS,
            ),
            (
                "unmounted: an ancestor's entries may apply",
                unmounted(),
                unmounted(),
                None,
                ns(),
                1,
                &[],
                NS,
            ),
        ];
        for (case, kernel, after, cached, private, private_runs, direct, native) in table {
            let prober = FakeProber::new(private.clone());
            let recheck = || Some(after.clone());
            let got = probe_facts(&Ok(kernel), &arches(), cached, &prober, &recheck);
            assert_eq!(*prober.private_calls.borrow(), private_runs, "{case}");
            assert_eq!(*prober.direct_asked.borrow(), direct, "{case}");
            let ran = |r: &Results| -> Vec<String> {
                r.iter()
                    .filter(|(_, ran)| *ran)
                    .map(|(a, _)| a.clone())
                    .collect()
            };
            let want = native.map(|n| n.iter().map(|a| a.to_string()).collect::<Vec<_>>());
            assert_eq!(got.native_probes.as_ref().map(ran), want, "{case}");
            if native.is_none() {
                assert_eq!(got.probe_error, private.err(), "{case}");
                assert_eq!(ran(&got.host_probes), ["x86_64"], "{case}");
            }
        }
    }

    #[test]
    fn gather_reads_binfmt_misc_through_the_seam() {
        let prober = FakeProber::new(Err("no namespaces in this test".into()));
        let facts = gather_with(&disabled_instance(), &arches(), None, &prober);
        assert!(facts.binfmt_mounted);
        assert_eq!(facts.binfmt_enabled, Some(false));
        // A disabled instance takes no probe: the direct answers are exact, no namespace
        // is asked for.
        assert_eq!(facts.probe_error, None);
        assert_eq!(facts.native_probes.as_ref().map(Vec::len), Some(4));
        assert!(facts.host_probes.is_empty());
        let report = crate::host::detect(
            &facts,
            &crate::catalog::Catalog::embedded().expect("catalog"),
        );
        assert_eq!(report.binfmt_misc.status, Some("disabled"));
        assert!(!facts.machine.is_empty() && !facts.kernel_release.is_empty());
    }
}
