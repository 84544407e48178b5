//! Known emulator defects keyed by translator version and binary traits; each row cites its source.

use crate::catalog::Translator;
use serde::Serialize;

/// A parsed `major.minor.patch` version.
pub type Version = (u32, u32, u32);

/// Parses "7.2.22", "go1.23.1", "8.0" into a version triple.
pub fn parse_version(s: &str) -> Option<Version> {
    let s = s.trim_start_matches("go");
    let mut it = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    let a = it.next()?.parse().ok()?;
    let b = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let c = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    Some((a, b, c))
}

/// Any version at all, for rows that hold whatever the version.
pub(crate) const ANY: (Version, Version) = ((0, 0, 0), (u32::MAX, 0, 0));

/// Binary traits a defect can depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trait {
    /// Every program.
    Any,
    /// A Go program; the build-info version must lie in the range (inclusive, exclusive).
    Go { from: Version, until: Version },
    /// Node.js (V8): a program named `node`/`nodejs`, or one that loads `libnode.so`.
    Node,
    /// .NET: the `dotnet` host, or a program that loads `libcoreclr.so`.
    Dotnet,
    /// A program of this file name (e.g. `ldconfig`, also `ldconfig.real`).
    Program(&'static str),
    /// Code built for at least this x86-64 level (its own note or its loader's).
    X86Level(u8),
}

/// Which translator versions a row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// Inclusive lower bound, exclusive upper bound; an unknown version never matches.
    Range(Version, Version),
    /// Every version, also an unknown one (Rosetta reports none to Linux).
    All,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Defect {
    /// Short stable key, shown as evidence.
    pub key: &'static str,
    #[serde(skip)]
    pub translators: &'static [Translator],
    #[serde(skip)]
    pub versions: Versions,
    /// Guest ISAs (QEMU names) the row is about; empty: any.
    #[serde(skip)]
    pub arches: &'static [&'static str],
    /// Linux kernel releases (of the machine the translator runs on) the row needs.
    #[serde(skip)]
    pub kernel: Option<(Version, Version)>,
    #[serde(skip)]
    pub needs: Trait,
    pub summary: &'static str,
    pub fix: &'static str,
    pub source: &'static str,
}

pub(crate) const QEMU: &[Translator] = &[Translator::Qemu];
pub(crate) const ROSETTA: &[Translator] = &[Translator::Rosetta];

pub use super::defects_table::DEFECTS;

/// Facts needed to match rows.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    pub translator: Option<Translator>,
    pub translator_version: Option<&'a str>,
    pub is_go: bool,
    pub go_version: Option<&'a str>,
    /// The guest ISA under its QEMU name.
    pub arch: Option<&'a str>,
    /// Release of the Linux kernel the translator runs on (`uname -r`).
    pub kernel: Option<&'a str>,
    /// The program's file name.
    pub program: Option<&'a str>,
    /// Libraries it needs or has loaded (file names).
    pub libraries: &'a [String],
    /// Its x86-64 level (note of the program or its loader).
    pub x86_level: Option<u8>,
}

fn within(v: Version, range: (Version, Version)) -> bool {
    v >= range.0 && v < range.1
}

fn has_lib(q: &Query<'_>, prefix: &str) -> bool {
    q.libraries.iter().any(|l| {
        let name = l.rsplit('/').next().unwrap_or(l);
        name.starts_with(prefix)
    })
}

fn trait_holds(q: &Query<'_>, t: Trait) -> bool {
    let program = q.program.map(|p| p.rsplit('/').next().unwrap_or(p));
    match t {
        Trait::Any => true,
        Trait::Go { from, until } => {
            q.is_go
                && q.go_version
                    .and_then(parse_version)
                    .is_some_and(|v| within(v, (from, until)))
        }
        Trait::Node => matches!(program, Some("node" | "nodejs")) || has_lib(q, "libnode.so"),
        Trait::Dotnet => program == Some("dotnet") || has_lib(q, "libcoreclr.so"),
        Trait::Program(name) => program
            .is_some_and(|p| p == name || p.strip_prefix(name).is_some_and(|r| r.starts_with('.'))),
        Trait::X86Level(min) => q.x86_level.is_some_and(|l| l >= min),
    }
}

fn versions_hold(q: &Query<'_>, d: &Defect) -> bool {
    match d.versions {
        Versions::All => true,
        Versions::Range(from, until) => q
            .translator_version
            .and_then(parse_version)
            .is_some_and(|v| within(v, (from, until))),
    }
}

/// Rows that apply. Unknown versions never match a version range: the table only reports
/// what it can prove.
pub fn matching(q: &Query<'_>) -> Vec<&'static Defect> {
    DEFECTS
        .iter()
        .filter(|d| q.translator.is_some_and(|t| d.translators.contains(&t)))
        .filter(|d| versions_hold(q, d))
        .filter(|d| d.arches.is_empty() || q.arch.is_some_and(|a| d.arches.contains(&a)))
        .filter(|d| match d.kernel {
            None => true,
            Some(range) => q
                .kernel
                .and_then(parse_version)
                .is_some_and(|v| within(v, range)),
        })
        .filter(|d| trait_holds(q, d.needs))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("7.2.22"), Some((7, 2, 22)));
        assert_eq!(parse_version("go1.23.1"), Some((1, 23, 1)));
        assert_eq!(parse_version("go1.21"), Some((1, 21, 0)));
        assert_eq!(parse_version("6.13.2-arch1-1"), Some((6, 13, 2)));
        assert_eq!(parse_version("x"), None);
    }

    fn keys(q: Query<'_>) -> Vec<&'static str> {
        matching(&q).iter().map(|d| d.key).collect()
    }

    fn qemu<'a>(tv: &'a str, arch: &'a str) -> Query<'a> {
        Query {
            translator: Some(Translator::Qemu),
            translator_version: Some(tv),
            arch: Some(arch),
            ..Default::default()
        }
    }

    #[test]
    fn go_rows() {
        let go = |tv, arch, v| Query {
            is_go: true,
            go_version: Some(v),
            ..qemu(tv, arch)
        };
        assert_eq!(
            keys(go("7.2.22", "riscv64", "go1.23.1")),
            ["go-pidfd-qemu-7.2", "go-1.23-hang-qemu"]
        );
        assert_eq!(
            keys(go("7.2.22", "riscv64", "go1.23.5")),
            ["go-1.23-hang-qemu"]
        );
        assert_eq!(
            keys(go("8.2.0", "aarch64", "go1.22.3")),
            ["go-async-preemption-qemu-arm64"]
        );
        assert_eq!(
            keys(go("8.2.0", "arm", "go1.21.0")),
            ["go-1.21-hang-qemu-arm"]
        );
        assert!(keys(go("8.2.0", "arm", "go1.20.9")).is_empty());
        assert!(keys(go("10.0.0", "riscv64", "go1.23.0")).is_empty());
        assert!(keys(qemu("7.2.22", "riscv64")).is_empty(), "not Go");
    }

    #[test]
    fn program_and_runtime_rows() {
        let prog = |tv, arch, p| Query {
            program: Some(p),
            ..qemu(tv, arch)
        };
        assert_eq!(
            keys(prog("9.2.0", "aarch64", "/sbin/ldconfig.real")),
            ["ldconfig-segv-qemu-arm64"]
        );
        assert_eq!(
            keys(prog("4.2.1", "aarch64", "ldconfig")),
            ["ldconfig-segv-qemu-4"]
        );
        assert!(keys(prog("9.2.2", "aarch64", "ldconfig")).is_empty());
        assert!(keys(prog("9.0.0", "riscv64", "ldconfig")).is_empty());
        assert!(keys(prog("9.0.0", "aarch64", "ldconfigure")).is_empty());
        assert_eq!(
            keys(prog("8.2.2", "arm", "/usr/local/bin/node")),
            ["node-hang-qemu-arm-s390x"]
        );
        assert!(keys(prog("8.2.2", "aarch64", "node")).is_empty());
        let libs = vec!["/usr/share/dotnet/shared/libcoreclr.so".to_string()];
        let dotnet = Query {
            libraries: &libs,
            ..prog("8.2.2", "x86_64", "MyApp")
        };
        assert_eq!(keys(dotnet), ["dotnet-w-x-hang"]);
    }

    #[test]
    fn rosetta_rows_match_the_kernel() {
        let rosetta = |kernel, program, level| Query {
            translator: Some(Translator::Rosetta),
            kernel: Some(kernel),
            program: Some(program),
            x86_level: level,
            arch: Some("x86_64"),
            ..Default::default()
        };
        assert!(keys(rosetta("6.1.0", "app", Some(2))).is_empty());
        assert_eq!(keys(rosetta("6.8.0", "app", None)), ["rosetta-auxv-28"]);
        assert_eq!(
            keys(rosetta("6.14.6-200.fc41.aarch64", "node", Some(3))),
            [
                "node-spin-rosetta",
                "rosetta-auxv-28",
                "rosetta-auxv-29",
                "rosetta-vdso-dt-hash",
                "rosetta-x86-64-v3"
            ]
        );
        let unknown_kernel = Query {
            kernel: None,
            ..rosetta("", "app", None)
        };
        assert!(keys(unknown_kernel).is_empty());
    }

    #[test]
    fn every_row_is_sourced_and_reachable() {
        assert!(DEFECTS.len() >= 12);
        let mut seen = std::collections::BTreeSet::new();
        for d in DEFECTS {
            assert!(seen.insert(d.key), "duplicate key {}", d.key);
            assert!(
                d.source.starts_with("https://github.com/") && d.source.contains("/issues/"),
                "{}",
                d.key
            );
            assert!(!d.translators.is_empty() && !d.fix.is_empty(), "{}", d.key);
        }
    }
}
