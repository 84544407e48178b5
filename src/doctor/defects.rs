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

/// Binary traits a defect can depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trait {
    /// A Go program; the build-info version must lie in the range (inclusive, exclusive).
    Go { from: Version, until: Version },
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Defect {
    /// Short stable key, shown as evidence.
    pub key: &'static str,
    #[serde(skip)]
    pub translator: Translator,
    /// Affected translator versions: inclusive lower bound, exclusive upper bound.
    #[serde(skip)]
    pub versions: (Version, Version),
    #[serde(skip)]
    pub needs: Trait,
    pub summary: &'static str,
    pub fix: &'static str,
    pub source: &'static str,
}

/// The table. Keep rows few and sourced; a row that cannot cite a public report does not belong.
pub const DEFECTS: &[Defect] = &[
    // Source: https://github.com/golang/go/issues/69259 (backport of golang/go#68976): Go 1.23
    // starts processes through pidfd, and os/exec fails ("fork/exec ... invalid argument") or
    // hangs in waitid under QEMU user mode >= 7.2 and < 8.0, the version in Debian bookworm.
    Defect {
        key: "go-pidfd-qemu-7.2",
        translator: Translator::Qemu,
        versions: ((7, 2, 0), (8, 0, 0)),
        needs: Trait::Go {
            from: (1, 23, 0),
            until: (1, 23, 2),
        },
        summary: "Go 1.23.0/1.23.1 os/exec (pidfd) fails or hangs under qemu-user 7.2.x",
        fix: "use a qemu-user of version 8.0 or newer (or older than 7.2), or rebuild with Go 1.23.2 or newer",
        source: "https://github.com/golang/go/issues/69259",
    },
    // Source: https://github.com/golang/go/issues/70329 ("runtime: 1.23 hangs when running
    // under qemu-user [bisected]"): Go 1.23 programs, notably the go toolchain itself, hang
    // under qemu-user; the report uses Fedora 41's qemu 9.1.
    Defect {
        key: "go-1.23-hang-qemu",
        translator: Translator::Qemu,
        versions: ((7, 2, 0), (9, 2, 0)),
        needs: Trait::Go {
            from: (1, 23, 0),
            until: (1, 24, 0),
        },
        summary: "Go 1.23 programs are reported to hang under qemu-user (golang/go#70329)",
        fix: "if it hangs, run `binfmtd doctor --run` to see the blocked syscall; try Go 1.22 or 1.24, or a newer qemu-user",
        source: "https://github.com/golang/go/issues/70329",
    },
];

/// Facts needed to match rows.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    pub translator: Option<Translator>,
    pub translator_version: Option<&'a str>,
    pub is_go: bool,
    pub go_version: Option<&'a str>,
}

fn within(v: Version, range: (Version, Version)) -> bool {
    v >= range.0 && v < range.1
}

/// Rows that apply. Unknown versions never match: the table only reports what it can prove.
pub fn matching(q: &Query<'_>) -> Vec<&'static Defect> {
    let tv = q.translator_version.and_then(parse_version);
    DEFECTS
        .iter()
        .filter(|d| Some(d.translator) == q.translator)
        .filter(|d| tv.is_some_and(|v| within(v, d.versions)))
        .filter(|d| match d.needs {
            Trait::Go { from, until } => {
                q.is_go
                    && q.go_version
                        .and_then(parse_version)
                        .is_some_and(|v| within(v, (from, until)))
            }
        })
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
        assert_eq!(parse_version("x"), None);
    }

    #[test]
    fn table_matches() {
        let q = |tv: &'static str, go: Option<&'static str>| Query {
            translator: Some(Translator::Qemu),
            translator_version: Some(tv),
            is_go: go.is_some(),
            go_version: go,
        };
        let keys = |q: Query<'_>| matching(&q).iter().map(|d| d.key).collect::<Vec<_>>();
        assert_eq!(
            keys(q("7.2.22", Some("go1.23.1"))),
            ["go-pidfd-qemu-7.2", "go-1.23-hang-qemu"]
        );
        assert_eq!(keys(q("7.2.22", Some("go1.23.5"))), ["go-1.23-hang-qemu"]);
        assert!(keys(q("8.2.0", Some("go1.22.3"))).is_empty());
        assert!(keys(q("7.2.22", None)).is_empty());
        assert!(keys(q("10.0.0", Some("go1.23.0"))).is_empty());
        let rosetta = Query {
            translator: Some(Translator::Rosetta),
            ..q("7.2.0", Some("go1.23.0"))
        };
        assert!(matching(&rosetta).is_empty());
        for d in DEFECTS {
            assert!(d.source.starts_with("https://"), "{}", d.key);
        }
    }
}
