//! What doctor needs to know about the host and the kernel, and how to read it from the system.

use crate::catalog::Catalog;
use crate::kernel::{Binfmt, ProcBinfmt, Snapshot};
use serde::Serialize;
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
}

/// uname's machine name to QEMU's arch name.
pub fn qemu_arch_of_uname(machine: &str) -> String {
    match machine {
        "amd64" => "x86_64",
        "arm64" | "armv8l" => "aarch64",
        "armv7l" | "armv6l" | "armv5tel" => "arm",
        "i686" | "i586" | "i486" => "i386",
        "ppc64el" => "ppc64le",
        m => m,
    }
    .to_string()
}

/// The x86-64 level from /proc/cpuinfo `flags` (psABI definitions of v2, v3, v4).
pub fn x86_64_level(flags: &[&str]) -> u8 {
    let has = |list: &[&str]| list.iter().all(|f| flags.contains(f));
    let v2 = has(&[
        "cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3",
    ]);
    let v3 = v2
        && has(&[
            "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
        ]);
    let v4 = v3 && has(&["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]);
    1 + v2 as u8 + v3 as u8 + v4 as u8
}

/// Natively runnable companions of a host ISA (kept simple; probes give the exact list).
pub fn native_companions(arch: &str, ia32: bool, aarch32: bool) -> Vec<String> {
    let mut v = vec![arch.to_string()];
    match arch {
        "x86_64" if ia32 => v.extend(["i386".to_string(), "i486".to_string()]),
        "aarch64" if aarch32 => v.push("arm".to_string()),
        _ => {}
    }
    v
}

impl HostFacts {
    /// Reads uname, the page size and /proc/cpuinfo.
    pub fn from_system() -> HostFacts {
        let machine = nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_else(|_| std::env::consts::ARCH.to_string());
        let arch = qemu_arch_of_uname(&machine);
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map(|p| p as u64)
            .unwrap_or(4096);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags: Vec<&str> = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags") || l.starts_with("Features"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.split_whitespace().collect())
            .unwrap_or_default();
        let x86_64_level = (arch == "x86_64" && !flags.is_empty()).then(|| x86_64_level(&flags));
        // CONFIG_IA32_EMULATION exposes /proc/sys/abi (vsyscall32); AArch32 shows as cpuinfo
        // features of 32-bit mode.
        let ia32 = Path::new("/proc/sys/abi/vsyscall32").exists();
        let aarch32 = flags.iter().any(|f| *f == "aarch32" || *f == "32bit");
        HostFacts {
            native: native_companions(&arch, ia32, aarch32),
            arch,
            page_size,
            x86_64_level,
        }
    }
}

impl DoctorContext {
    /// Reads the kernel snapshot at `binfmt_path` and the host facts.
    pub fn from_system(binfmt_path: &Path, catalog: Catalog) -> DoctorContext {
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
            host: HostFacts::from_system(),
            host_root: PathBuf::from("/"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_from_flags() {
        let v1 = ["fpu", "cx8", "sse2"];
        assert_eq!(x86_64_level(&v1), 1);
        let v2 = [
            "cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3",
        ];
        assert_eq!(x86_64_level(&v2), 2);
        let v3: Vec<&str> = v2
            .iter()
            .copied()
            .chain([
                "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
            ])
            .collect();
        assert_eq!(x86_64_level(&v3), 3);
    }

    #[test]
    fn arch_names_and_companions() {
        assert_eq!(qemu_arch_of_uname("arm64"), "aarch64");
        assert_eq!(qemu_arch_of_uname("x86_64"), "x86_64");
        assert_eq!(
            native_companions("x86_64", true, false),
            ["x86_64", "i386", "i486"]
        );
        assert_eq!(native_companions("aarch64", false, false), ["aarch64"]);
        assert_eq!(
            native_companions("aarch64", false, true),
            ["aarch64", "arm"]
        );
    }
}
