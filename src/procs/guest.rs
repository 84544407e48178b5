//! Which emulator a process runs and which guest program it runs, from exe, comm, argv and auxv (pure).

use crate::catalog::{Catalog, Translator};
use serde::Serialize;
use std::collections::BTreeMap;

/// `AT_EXECFD`: the kernel passed the binary open (binfmt_misc `O` flag).
pub const AT_EXECFD: u64 = 2;
/// `AT_FLAGS`; bit 0 is `AT_FLAGS_PRESERVE_ARGV0` (binfmt_misc `P` flag, Linux 5.12+).
pub const AT_FLAGS: u64 = 8;

/// A known interpreter: the handler it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub handler: String,
    pub translator: Translator,
    /// The guest ISA (QEMU name) and its primary OCI platform.
    pub arch: String,
    pub platform: String,
}

/// Interpreter file names → handler, from the catalog (`qemu-aarch64-static`,
/// `aarch64-binfmt-P`, `rosetta`, `FEXInterpreter`, `box64`...).
#[derive(Debug, Clone, Default)]
pub struct Interpreters(BTreeMap<String, Known>);

impl Interpreters {
    pub fn from_catalog(c: &Catalog) -> Interpreters {
        let mut map = BTreeMap::new();
        for h in c.handlers.values() {
            let known = Known {
                handler: h.name.clone(),
                translator: h.translator,
                arch: h.arch.clone(),
                platform: h.primary_platform(),
            };
            let mut names: Vec<String> =
                h.interpreters.iter().map(|i| base(i).to_string()).collect();
            names.push(h.name.clone());
            if h.translator == Translator::Qemu {
                names.push(format!("qemu-{}-static", h.arch));
                names.push(format!("{}-binfmt-P", h.arch));
            }
            for n in names {
                map.entry(n).or_insert_with(|| known.clone());
            }
        }
        Interpreters(map)
    }

    /// The handler whose interpreter has this path's file name.
    pub fn lookup(&self, path: &str) -> Option<&Known> {
        self.0.get(base(path.trim_end_matches(" (deleted)")))
    }
}

fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// `comm` is the file name cut to 15 bytes.
fn comm_of(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Evidence that binfmt_misc started the interpreter (rather than someone running it by
/// name): the kernel's auxv flags, or a `comm` that is not the interpreter's.
pub fn via_binfmt(exe: &str, argv0: Option<&str>, comm: &str, auxv: Option<&[(u64, u64)]>) -> bool {
    if let Some(aux) = auxv {
        let execfd = aux.iter().any(|(k, _)| *k == AT_EXECFD);
        let p = aux.iter().any(|(k, v)| *k == AT_FLAGS && v & 1 == 1);
        if execfd || p {
            return true;
        }
    }
    let own = [Some(exe), argv0]
        .into_iter()
        .flatten()
        .map(|p| comm_of(base(p.trim_end_matches(" (deleted)"))));
    !own.into_iter().any(|c| c == comm)
}

/// The guest program as it was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guest {
    /// The program's path as the kernel was given it (inside the process's root).
    pub path: String,
    /// Its real argv: argv[0] as the caller set it under `P`, else the path.
    pub argv: Vec<String>,
    /// Whether the entry had `P` (argv[0] preserved).
    pub preserve_argv0: bool,
    pub arch: String,
    pub platform: String,
}

/// Splits the interpreter's argv (`INTERP PATH [ARGV0] ARGS...`). `P` is known from
/// `AT_FLAGS` when auxv is readable, else from Debian's `-binfmt-P` interpreter names.
pub fn guest(cmdline: &[String], auxv: Option<&[(u64, u64)]>, known: &Known) -> Option<Guest> {
    let interp = cmdline.first()?;
    let path = cmdline.get(1)?.clone();
    let preserve = match auxv {
        Some(aux) => aux.iter().any(|(k, v)| *k == AT_FLAGS && v & 1 == 1),
        None => base(interp).ends_with("-binfmt-P"),
    };
    let argv = if preserve {
        cmdline.get(2..).map(<[String]>::to_vec).unwrap_or_default()
    } else {
        std::iter::once(path.clone())
            .chain(cmdline.iter().skip(2).cloned())
            .collect()
    };
    Some(Guest {
        path,
        argv,
        preserve_argv0: preserve,
        arch: known.arch.clone(),
        platform: known.platform.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn interpreters_from_the_catalog() {
        let c = Catalog::embedded().expect("embedded catalog");
        let i = Interpreters::from_catalog(&c);
        for (path, handler) in [
            ("/usr/bin/qemu-aarch64-static", "qemu-aarch64"),
            ("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "qemu-aarch64"),
            ("/usr/bin/qemu-arm (deleted)", "qemu-arm"),
            ("/run/rosetta/rosetta", "rosetta"),
            ("/usr/bin/FEXInterpreter", "fex-x86_64"),
            ("/usr/local/bin/box64", "box64"),
        ] {
            assert_eq!(
                i.lookup(path).map(|k| k.handler.as_str()),
                Some(handler),
                "{path}"
            );
        }
        assert_eq!(
            i.lookup("/usr/bin/qemu-riscv64-static")
                .map(|k| k.platform.as_str()),
            Some("linux/riscv64")
        );
        assert!(i.lookup("/usr/bin/bash").is_none());
    }

    #[test]
    fn binfmt_evidence_and_argv() {
        let q = "/usr/bin/qemu-aarch64-static";
        assert!(via_binfmt(q, Some(q), "hello-aarch64-s", None));
        assert!(
            !via_binfmt(q, Some(q), "qemu-aarch64-st", None),
            "run by name"
        );
        assert!(via_binfmt(
            q,
            Some(q),
            "qemu-aarch64-st",
            Some(&[(AT_EXECFD, 3)])
        ));
        assert!(via_binfmt(
            q,
            Some(q),
            "qemu-aarch64-st",
            Some(&[(AT_FLAGS, 1)])
        ));
        assert!(!via_binfmt(
            q,
            Some(q),
            "qemu-aarch64-st",
            Some(&[(AT_FLAGS, 0)])
        ));
        let known = Known {
            handler: "qemu-aarch64".into(),
            translator: Translator::Qemu,
            arch: "aarch64".into(),
            platform: "linux/arm64".into(),
        };
        let plain =
            guest(&v(&[q, "/bin/app", "-x"]), Some(&[(AT_FLAGS, 0)]), &known).expect("guest");
        assert_eq!(
            (
                plain.path.as_str(),
                plain.argv.clone(),
                plain.preserve_argv0
            ),
            ("/bin/app", v(&["/bin/app", "-x"]), false)
        );
        let p = guest(
            &v(&[
                "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
                "/bin/busybox",
                "sh",
                "-c",
                "x",
            ]),
            None,
            &known,
        )
        .expect("guest");
        assert_eq!((p.argv, p.preserve_argv0), (v(&["sh", "-c", "x"]), true));
        let p = guest(
            &v(&[q, "/bin/busybox", "ls"]),
            Some(&[(AT_FLAGS, 1)]),
            &known,
        )
        .expect("guest");
        assert_eq!(p.argv, v(&["ls"]));
        assert!(guest(&v(&[q]), None, &known).is_none());
    }
}
