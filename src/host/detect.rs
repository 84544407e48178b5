//! Pure host decisions: ISA names, natively runnable ISAs, x86-64 level, Rosetta health.

use super::facts::{HostFacts, RosettaFact};
use crate::catalog::{Catalog, Translator};
use serde::Serialize;

/// The machine ISA under its three common names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsaNames {
    pub uname: String,
    /// OCI platform, e.g. `linux/arm64`.
    pub oci: Option<String>,
    /// QEMU's arch name, e.g. `aarch64`.
    pub qemu: Option<String>,
}

/// How the natively runnable set was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NativeMethod {
    /// Each ISA's probe was executed where no binfmt_misc entry could take it: in an empty
    /// private instance, or directly when no entry of the current instance takes any probe.
    Probe,
    /// No private instance: ISAs that no entry takes were probed directly (exact); the rest
    /// were guessed from QEMU's family table.
    ProbeAndGuess,
    /// Probes could not run; QEMU's family table was used (may be wrong, e.g. AArch32).
    FamilyGuess,
}

/// Rosetta as found on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RosettaStatus {
    pub present: bool,
    /// Present, executable, on an Apple virtiofs share, and answered with its version.
    pub healthy: bool,
    pub path: Option<String>,
    pub version: Option<String>,
    pub note: Option<String>,
}

/// The kernel version and what it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelInfo {
    pub release: String,
    pub version: Option<(u32, u32)>,
    /// binfmt_misc instances per user namespace (Linux 6.7+).
    pub private_instances: bool,
}

/// binfmt_misc availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BinfmtInfo {
    pub supported: bool,
    pub mounted: bool,
    pub status: Option<&'static str>,
}

/// What `binfmtd host` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostReport {
    pub schema: &'static str,
    pub machine: IsaNames,
    /// QEMU arch names this CPU runs without emulation.
    pub native: Vec<String>,
    /// The same as OCI platforms.
    pub native_platforms: Vec<String>,
    pub native_method: NativeMethod,
    pub probe_error: Option<String>,
    pub kernel: KernelInfo,
    pub page_size: u64,
    pub binfmt_misc: BinfmtInfo,
    pub container: Option<String>,
    pub nested_user_namespace: bool,
    /// x86-64 micro-architecture level (1-4) of the CPU, on x86-64 hosts.
    pub x86_64_level: Option<u8>,
    pub rosetta: RosettaStatus,
}

/// Maps `uname -m` to QEMU's arch name.
pub fn qemu_arch_of_uname(machine: &str) -> Option<&'static str> {
    Some(match machine {
        "x86_64" | "amd64" => "x86_64",
        "i386" | "i486" | "i586" | "i686" => "i386",
        "aarch64" | "arm64" => "aarch64",
        "aarch64_be" => "aarch64_be",
        m if m.starts_with("armv") && m.ends_with('b') => "armeb",
        m if m.starts_with("armv") || m == "arm" => "arm",
        "riscv64" => "riscv64",
        "riscv32" => "riscv32",
        "ppc64le" => "ppc64le",
        "ppc64" => "ppc64",
        "ppc" | "ppcle" => "ppc",
        "s390x" => "s390x",
        "mips64" => "mips64",
        "mips" => "mips",
        "loongarch64" => "loongarch64",
        "sparc64" => "sparc64",
        "sparc" => "sparc",
        "alpha" => "alpha",
        "m68k" => "m68k",
        "parisc" | "parisc64" => "hppa",
        "sh4" => "sh4",
        "sh4eb" => "sh4eb",
        _ => return None,
    })
}

/// The x86-64 psABI level a CPU with these flags reaches.
pub fn x86_64_level(flags: &[String]) -> u8 {
    let has = |names: &[&str]| names.iter().all(|n| flags.iter().any(|f| f == n));
    let v2 = has(&[
        "cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3",
    ]);
    let v3 = v2
        && has(&[
            "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
        ]);
    let v4 = v3 && has(&["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]);
    1 + u8::from(v2) + u8::from(v3) + u8::from(v4)
}

fn rosetta_status(facts: &[RosettaFact]) -> RosettaStatus {
    let best = facts
        .iter()
        .find(|r| r.executable && r.version.is_some())
        .or_else(|| facts.iter().find(|r| r.executable))
        .or_else(|| facts.first());
    let Some(r) = best else {
        return RosettaStatus {
            present: false,
            healthy: false,
            path: None,
            version: None,
            note: None,
        };
    };
    let healthy = r.executable && r.version.is_some();
    let note = if !r.executable {
        Some("the Rosetta file exists but is not executable".to_string())
    } else if r.version.is_none() {
        Some("Rosetta did not print its version: it only runs inside an Apple Virtualization.framework VM".to_string())
    } else if !r.virtiofs {
        Some("Rosetta answered but its directory is not a virtiofs share".to_string())
    } else {
        None
    };
    RosettaStatus {
        present: true,
        healthy,
        path: Some(r.path.display().to_string()),
        version: r.version.clone(),
        note,
    }
}

/// QEMU's family guess: the ISAs a CPU of this arch is assumed to run.
fn family_guess(catalog: &Catalog, host_arch: &str) -> Vec<String> {
    let family = catalog
        .qemu_for_arch(host_arch)
        .map(|h| h.family.clone())
        .unwrap_or_else(|| host_arch.to_string());
    let mut v: Vec<String> = catalog
        .handlers
        .values()
        .filter(|h| h.translator == Translator::Qemu && h.family == family)
        .map(|h| h.arch.clone())
        .collect();
    if !v.iter().any(|a| a == host_arch) {
        v.push(host_arch.to_string());
    }
    v.sort();
    v
}

/// ISAs whose native answer is another's (ISA, stand-in): Linux's ELF loader checks them
/// together, so one probe answers both. x86's `elf_check_arch_ia32` accepts `EM_386` and
/// `EM_486` alike.
const SAME_LOADER_CHECK: [(&str, &str); 1] = [("i486", "i386")];

/// The ISAs worth probing to learn what this machine runs natively (pure): those of its QEMU
/// family that have a probe, but its own (native by definition, see [`detect`]) and those
/// whose stand-in ([`SAME_LOADER_CHECK`]) is probed. The kernel's ELF loader takes only its
/// own `e_machine` and the compat ones of the same family (e.g. i386 on x86-64, AArch32 on
/// arm64), so a probe from another family can only fail; running it would cost an exec, and
/// on kernels with modules a `request_module("binfmt-464c")` as well. On a machine QEMU
/// does not name, every probe runs.
pub fn native_candidates(catalog: &Catalog, machine: &str, with_probe: &[String]) -> Vec<String> {
    let Some(arch) = qemu_arch_of_uname(machine) else {
        return with_probe.to_vec();
    };
    let family = family_guess(catalog, arch);
    let probed: Vec<&String> = with_probe
        .iter()
        .filter(|a| *a != arch && family.contains(a))
        .collect();
    let stood_in = |a: &String| {
        SAME_LOADER_CHECK.iter().any(|(isa, stand_in)| {
            a == isa && (*stand_in == arch || probed.iter().any(|p| p == stand_in))
        })
    };
    probed
        .iter()
        .filter(|a| !stood_in(a))
        .map(|a| a.to_string())
        .collect()
}

/// Probe results with the answers their stand-ins give ([`SAME_LOADER_CHECK`]) for the
/// ISAs that were not probed themselves; the machine's own ISA (`own`) answers yes.
fn with_stand_ins(results: &[(String, bool)], own: Option<&str>) -> Vec<(String, bool)> {
    let mut out = results.to_vec();
    for (isa, stand_in) in SAME_LOADER_CHECK {
        let answer = results
            .iter()
            .find(|(a, _)| a == stand_in)
            .map(|r| r.1)
            .or((own == Some(stand_in)).then_some(true));
        if let (Some(ran), false) = (answer, results.iter().any(|(a, _)| a == isa)) {
            out.push((isa.to_string(), ran));
        }
    }
    out
}

/// Exact where probed, the family table (`guess`) for the ISAs that were not (pure).
fn probed_or_guessed(results: &[(String, bool)], guess: Vec<String>) -> Vec<String> {
    let probed = |a: &String| results.iter().find(|(p, _)| p == a);
    let mut v: Vec<String> = guess
        .into_iter()
        .filter(|a| probed(a).is_none_or(|(_, ran)| *ran))
        .collect();
    v.extend(
        results
            .iter()
            .filter(|(_, ran)| *ran)
            .map(|(a, _)| a.clone()),
    );
    v
}

/// Decides everything `binfmtd host` reports from gathered facts.
pub fn detect(facts: &HostFacts, catalog: &Catalog) -> HostReport {
    let qemu = qemu_arch_of_uname(&facts.machine).map(str::to_string);
    let oci = qemu
        .as_deref()
        .and_then(|a| catalog.qemu_for_arch(a))
        .map(|h| h.primary_platform());
    let guess = qemu
        .as_deref()
        .map(|a| family_guess(catalog, a))
        .unwrap_or_default();
    let (mut native, method) = match &facts.native_probes {
        Some(results) => {
            let results = with_stand_ins(results, qemu.as_deref());
            // An ISA of the machine's family with no answer (its probe refused by a seccomp
            // filter of ours) is left to the family table.
            let unanswered = guess
                .iter()
                .filter(|a| Some(a.as_str()) != qemu.as_deref())
                .any(|a| !results.iter().any(|(p, _)| p == a));
            let method = if unanswered {
                NativeMethod::ProbeAndGuess
            } else {
                NativeMethod::Probe
            };
            (probed_or_guessed(&results, guess), method)
        }
        None if facts.host_probes.is_empty() => (guess, NativeMethod::FamilyGuess),
        None => {
            let results = with_stand_ins(&facts.host_probes, qemu.as_deref());
            (
                probed_or_guessed(&results, guess),
                NativeMethod::ProbeAndGuess,
            )
        }
    };
    // The machine's own ISA is native by definition, even if its probe was not run.
    if let Some(a) = &qemu {
        if !native.contains(a) {
            native.push(a.clone());
        }
    }
    native.sort();
    native.dedup();
    let mut native_platforms: Vec<String> = native
        .iter()
        .filter_map(|a| catalog.qemu_for_arch(a))
        .flat_map(|h| h.platforms.iter().cloned())
        .collect();
    native_platforms.sort();
    native_platforms.dedup();
    let version = crate::sys::release::major_minor(&facts.kernel_release);
    HostReport {
        schema: "binfmtd.host/v1",
        machine: IsaNames {
            uname: facts.machine.clone(),
            oci,
            qemu: qemu.clone(),
        },
        native,
        native_platforms,
        native_method: method,
        probe_error: facts.probe_error.clone(),
        kernel: KernelInfo {
            release: facts.kernel_release.clone(),
            version,
            private_instances: crate::sys::ns::has_private_instances(&facts.kernel_release),
        },
        page_size: facts.page_size,
        binfmt_misc: BinfmtInfo {
            supported: facts.binfmt_supported,
            mounted: facts.binfmt_mounted,
            status: facts
                .binfmt_enabled
                .map(|e| if e { "enabled" } else { "disabled" }),
        },
        container: facts.container.clone(),
        nested_user_namespace: facts.nested_userns,
        x86_64_level: (qemu.as_deref() == Some("x86_64")).then(|| x86_64_level(&facts.cpu_flags)),
        rosetta: rosetta_status(&facts.rosetta),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm64(aarch32: bool, page_size: u64, rosetta: Option<&str>) -> HostFacts {
        HostFacts {
            machine: "aarch64".into(),
            kernel_release: "6.8.0-1009-aws".into(),
            page_size,
            binfmt_supported: true,
            binfmt_mounted: true,
            binfmt_enabled: Some(true),
            cpu_flags: vec!["fp".into(), "asimd".into()],
            native_probes: Some(vec![
                ("aarch64".into(), true),
                ("arm".into(), aarch32),
                ("x86_64".into(), false),
                ("riscv64".into(), false),
            ]),
            rosetta: rosetta
                .map(|share| {
                    vec![RosettaFact {
                        path: format!("{share}/rosetta").into(),
                        executable: true,
                        virtiofs: true,
                        version: Some("Rosetta-332.1".into()),
                    }]
                })
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn arm64_hosts() {
        let c = Catalog::embedded().unwrap();
        // (facts, native, page size, rosetta path)
        let table: Vec<(HostFacts, &[&str], u64, Option<&str>)> = vec![
            (arm64(true, 4096, None), &["aarch64", "arm"], 4096, None),
            (arm64(false, 4096, None), &["aarch64"], 4096, None),
            (
                arm64(false, 16384, Some("/media/rosetta")),
                &["aarch64"],
                16384,
                Some("/media/rosetta/rosetta"),
            ),
            (
                arm64(false, 16384, Some("/mnt/lima-rosetta")),
                &["aarch64"],
                16384,
                Some("/mnt/lima-rosetta/rosetta"),
            ),
            (
                arm64(false, 16384, Some("/mnt")),
                &["aarch64"],
                16384,
                Some("/mnt/rosetta"),
            ),
            (
                arm64(true, 16384, Some("/run/rosetta")),
                &["aarch64", "arm"],
                16384,
                Some("/run/rosetta/rosetta"),
            ),
            (arm64(false, 65536, None), &["aarch64"], 65536, None),
        ];
        for (facts, native, page, rosetta) in table {
            let r = detect(&facts, &c);
            assert_eq!(r.machine.qemu.as_deref(), Some("aarch64"));
            assert_eq!(r.machine.oci.as_deref(), Some("linux/arm64"));
            assert_eq!(r.native, native, "{facts:?}");
            assert_eq!(r.native_method, NativeMethod::Probe);
            assert_eq!(r.page_size, page);
            assert_eq!(r.rosetta.path.as_deref(), rosetta);
            assert_eq!(r.rosetta.healthy, rosetta.is_some());
            assert_eq!(r.x86_64_level, None);
            assert!(r.kernel.private_instances);
            assert_eq!(
                r.native_platforms.contains(&"linux/arm/v7".to_string()),
                native.contains(&"arm")
            );
        }
    }

    #[test]
    fn rosetta_outside_apple_vm_is_present_but_unhealthy() {
        let mut f = arm64(false, 16384, Some("/mnt/lima-rosetta"));
        f.rosetta[0].version = None;
        let r = detect(&f, &Catalog::embedded().unwrap());
        assert!(r.rosetta.present && !r.rosetta.healthy);
        assert!(r.rosetta.note.unwrap().contains("Apple"));
    }

    #[test]
    fn family_guess_without_probes() {
        let c = Catalog::embedded().unwrap();
        let mut f = arm64(true, 4096, None);
        f.native_probes = None;
        f.probe_error = Some("user namespaces disabled".into());
        let r = detect(&f, &c);
        assert_eq!(r.native_method, NativeMethod::FamilyGuess);
        assert_eq!(r.native, ["aarch64", "arm"]);
        // Direct probes where no entry takes the ISA correct the guess: no AArch32 here.
        f.host_probes = vec![("arm".into(), false), ("aarch64".into(), true)];
        let r = detect(&f, &c);
        assert_eq!(r.native_method, NativeMethod::ProbeAndGuess);
        assert_eq!(r.native, ["aarch64"]);
        let x86 = HostFacts {
            machine: "x86_64".into(),
            kernel_release: "6.1.0".into(),
            ..Default::default()
        };
        let r = detect(&x86, &c);
        assert_eq!(r.native, ["i386", "i486", "x86_64"]);
        assert!(!r.kernel.private_instances);
        assert_eq!(r.x86_64_level, Some(1));
    }

    #[test]
    fn native_candidates_are_the_machines_family() {
        let c = Catalog::embedded().unwrap();
        let all: Vec<String> = crate::probe::supported_arches()
            .iter()
            .map(|a| a.to_string())
            .collect();
        // (uname -m, the probes worth running)
        let table: [(&str, &[&str]); 12] = [
            ("x86_64", &["i386"]),
            ("i686", &["x86_64"]),
            ("aarch64", &["arm"]),
            ("armv7l", &["aarch64"]),
            ("aarch64_be", &["armeb"]),
            ("ppc64le", &[]),
            ("ppc64", &["ppc"]),
            ("riscv64", &["riscv32"]),
            ("s390x", &[]),
            ("loongarch64", &[]),
            (
                "mips64",
                &["mips", "mipsel", "mipsn32", "mipsn32el", "mips64el"],
            ),
            ("sparc64", &["sparc", "sparc32plus"]),
        ];
        for (machine, want) in table {
            assert_eq!(native_candidates(&c, machine, &all), want, "{machine}");
        }
        // A machine QEMU does not name: every probe runs.
        assert_eq!(native_candidates(&c, "weird", &all), all);
        // Without i386's probe, i486 is probed itself.
        assert_eq!(
            native_candidates(&c, "x86_64", &["i486".to_string()]),
            ["i486"]
        );
        // Only arches that have a probe are ever returned.
        assert_eq!(
            native_candidates(&c, "x86_64", &["i386".to_string()]),
            ["i386"]
        );
    }

    #[test]
    fn stand_ins_answer_for_the_isas_they_cover() {
        let c = Catalog::embedded().unwrap();
        let x86 = |native: Option<Vec<(&str, bool)>>, host: Vec<(&str, bool)>| {
            let own = |v: Vec<(&str, bool)>| -> Vec<(String, bool)> {
                v.into_iter().map(|(a, r)| (a.to_string(), r)).collect()
            };
            HostFacts {
                machine: "x86_64".into(),
                kernel_release: "6.8.0".into(),
                native_probes: native.map(own),
                host_probes: own(host),
                ..Default::default()
            }
        };
        // (facts, native ISAs decided)
        let table: [(HostFacts, &[&str]); 5] = [
            (
                x86(Some(vec![("i386", true)]), vec![]),
                &["i386", "i486", "x86_64"],
            ),
            // No IA-32 emulation in this kernel: neither 32-bit ISA.
            (x86(Some(vec![("i386", false)]), vec![]), &["x86_64"]),
            // A result of its own is kept.
            (
                x86(Some(vec![("i386", true), ("i486", false)]), vec![]),
                &["i386", "x86_64"],
            ),
            // No answer for the family (refused by a seccomp filter): the family table.
            (x86(Some(vec![]), vec![]), &["i386", "i486", "x86_64"]),
            // Without a private instance: the direct probe's answer, not the family guess.
            (x86(None, vec![("i386", false)]), &["x86_64"]),
        ];
        // On an i686 machine, i386 is its own ISA: i486 with it, x86_64 as probed.
        let mut i686 = x86(Some(vec![("x86_64", false)]), vec![]);
        i686.machine = "i686".into();
        assert_eq!(detect(&i686, &c).native, ["i386", "i486"]);
        for (facts, native) in table {
            assert_eq!(detect(&facts, &c).native, native, "{facts:?}");
        }
        let guessed = detect(&x86(Some(vec![]), vec![]), &c).native_method;
        assert_eq!(guessed, NativeMethod::ProbeAndGuess);
    }

    #[test]
    fn uname_names_and_levels() {
        for (m, q) in [
            ("armv7l", Some("arm")),
            ("armv6l", Some("arm")),
            ("i686", Some("i386")),
            ("ppc64le", Some("ppc64le")),
            ("weird", None),
        ] {
            assert_eq!(qemu_arch_of_uname(m), q, "{m}");
        }
        let flags = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let v2 = "cx16 lahf_lm popcnt pni sse4_1 sse4_2 ssse3";
        let v3 = format!("{v2} avx avx2 bmi1 bmi2 f16c fma abm movbe xsave");
        let v4 = format!("{v3} avx512f avx512bw avx512cd avx512dq avx512vl");
        assert_eq!(x86_64_level(&flags("fpu sse2")), 1);
        assert_eq!(x86_64_level(&flags(v2)), 2);
        assert_eq!(x86_64_level(&flags(&v3)), 3);
        assert_eq!(x86_64_level(&flags(&v4)), 4);
    }
}
