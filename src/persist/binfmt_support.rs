//! Debian binfmt-support: writing its import files and reading its database (pure, plus a scan).
//!
//! An import file (`/usr/share/binfmts/NAME`) holds one `key value` per line. The database
//! (`/var/lib/binfmts/NAME`, written by `update-binfmts`) holds ten lines in a fixed order:
//! package, type (`magic`/`extension`), offset, magic, mask, interpreter, detector,
//! credentials, preserve, fix_binary. The entry's name is the file name in both.

use crate::kernel::codec;
use crate::model::{Entry, Flags, Matcher, Rule};
use std::path::{Path, PathBuf};

/// Where `update-binfmts` keeps its database.
pub const ADMIN_DIR: &str = "/var/lib/binfmts";
/// Where packages put their import files.
pub const IMPORT_DIR: &str = "/usr/share/binfmts";

/// A flag set that binfmt-support's keys cannot state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unexpressible {
    #[error("entry {name:?} has flags {flags}: binfmt-support has no key for O without C (credentials yes would add C, credentials no drops O); export it as binfmt.d instead, or register it with --flags without O")]
    OpenWithoutCredentials { name: String, flags: String },
    #[error("entry {name:?}: {reason}")]
    Invalid { name: String, reason: String },
}

fn yes_no(on: bool) -> &'static str {
    if on {
        "yes"
    } else {
        "no"
    }
}

/// The import file for one rule, owned by `package` (pure).
pub fn import_file(rule: &Rule, package: &str) -> Result<String, Unexpressible> {
    let name = rule.name.clone();
    // The register line's own checks (name, interpreter, lengths) apply to this form too.
    codec::encode(rule).map_err(|e| Unexpressible::Invalid {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    let f = rule.flags;
    if f.open_binary && !f.credentials {
        return Err(Unexpressible::OpenWithoutCredentials {
            name,
            flags: f.to_string(),
        });
    }
    let mut out = format!(
        "package {package}\ninterpreter {}\n",
        rule.interpreter.display()
    );
    match &rule.matcher {
        Matcher::Magic {
            offset,
            magic,
            mask,
        } => {
            out.push_str(&format!("magic {}\n", codec::escape_bytes(magic)));
            if *offset != 0 {
                out.push_str(&format!("offset {offset}\n"));
            }
            if let Some(m) = mask {
                out.push_str(&format!("mask {}\n", codec::escape_bytes(m)));
            }
        }
        Matcher::Extension { extension } => out.push_str(&format!("extension {extension}\n")),
    }
    out.push_str(&format!(
        "credentials {}\npreserve {}\nfix_binary {}\n",
        yes_no(f.credentials),
        yes_no(f.preserve_argv0),
        yes_no(f.fix_binary)
    ));
    Ok(out)
}

/// One record of binfmt-support's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRecord {
    /// The package that imported it (`:` for a format installed by hand).
    pub package: String,
    /// The rule update-binfmts registers for it; `None` when a userspace detector is set
    /// (the kernel then runs binfmt-support's detector, not this interpreter).
    pub rule: Option<Rule>,
}

/// Why a database file could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse binfmt-support record {name:?}: {reason}")]
pub struct AdminParseError {
    pub name: String,
    pub reason: String,
}

/// Parses `/var/lib/binfmts/NAME` (pure).
pub fn parse_admin(name: &str, text: &str) -> Result<AdminRecord, AdminParseError> {
    let err = |reason: &str| AdminParseError {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() < 10 {
        return Err(err("expected 10 lines: package, type, offset, magic, mask, interpreter, detector, credentials, preserve, fix_binary"));
    }
    let bytes = |s: &str, what: &str| {
        codec::unescape_bytes(s).ok_or_else(|| err(&format!("bad \\x escape in {what}")))
    };
    let matcher = match lines[1] {
        "magic" => Matcher::Magic {
            offset: match lines[2] {
                "" => 0,
                o => o.parse().map_err(|_| err("offset is not a number"))?,
            },
            magic: bytes(lines[3], "magic")?,
            mask: match lines[4] {
                "" => None,
                m => Some(bytes(m, "mask")?),
            },
        },
        "extension" => Matcher::Extension {
            extension: lines[3].to_string(),
        },
        _ => return Err(err("type must be magic or extension")),
    };
    let flag = |i: usize| match lines[i] {
        "yes" => Ok(true),
        "no" | "" => Ok(false),
        _ => Err(err(
            "credentials, preserve and fix_binary must be yes or no",
        )),
    };
    let credentials = flag(7)?;
    let flags = Flags {
        preserve_argv0: flag(8)?,
        open_binary: credentials,
        credentials,
        fix_binary: flag(9)?,
    };
    let rule = lines[6].is_empty().then(|| Rule {
        name: name.to_string(),
        matcher,
        interpreter: PathBuf::from(lines[5]),
        flags,
    });
    Ok(AdminRecord {
        package: lines[0].to_string(),
        rule,
    })
}

/// Every readable record in binfmt-support's database: (file, record). Unreadable files are
/// skipped (they name no entry binfmtd could attribute).
pub fn scan(dir: &Path) -> Vec<(PathBuf, AdminRecord)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, AdminRecord)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((e.path(), parse_admin(&name, &text).ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The package whose record registers exactly this entry, with the record's file (pure).
pub fn attribute(entry: &Entry, records: &[(PathBuf, AdminRecord)]) -> Option<String> {
    records.iter().find_map(|(path, r)| {
        r.rule
            .as_ref()
            .filter(|rule| rule.same_as(entry))
            .map(|_| format!("binfmt-support package {} ({})", r.package, path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(flags: &str) -> Rule {
        Rule {
            name: "qemu-aarch64".into(),
            matcher: Matcher::Magic {
                offset: 0,
                magic: b"\x7fELF\x02".to_vec(),
                mask: Some(vec![0xff, 0xff, 0xff, 0xff, 0xfe]),
            },
            interpreter: "/usr/bin/qemu-aarch64-static".into(),
            flags: Flags::parse(flags).unwrap(),
        }
    }

    #[test]
    fn import_file_states_every_flag_or_refuses() {
        type Keys = Option<(&'static str, &'static str, &'static str)>;
        let cases: &[(&str, Keys)] = &[
            ("", Some(("no", "no", "no"))),
            ("F", Some(("no", "no", "yes"))),
            ("PF", Some(("no", "yes", "yes"))),
            ("OCF", Some(("yes", "no", "yes"))),
            ("C", Some(("yes", "no", "no"))),
            ("POCF", Some(("yes", "yes", "yes"))),
            ("O", None),
            ("OF", None),
            ("POF", None),
        ];
        for (flags, want) in cases {
            let got = import_file(&rule(flags), "binfmtd");
            match want {
                Some((c, p, f)) => {
                    let text = got.unwrap();
                    assert!(
                        text.contains(&format!("credentials {c}\n")),
                        "{flags}: {text}"
                    );
                    assert!(text.contains(&format!("preserve {p}\n")), "{flags}: {text}");
                    assert!(
                        text.contains(&format!("fix_binary {f}\n")),
                        "{flags}: {text}"
                    );
                }
                None => assert!(
                    matches!(got, Err(Unexpressible::OpenWithoutCredentials { .. })),
                    "{flags}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn import_file_layout() {
        let text = import_file(&rule("F"), "binfmtd").unwrap();
        assert_eq!(
            text,
            "package binfmtd\ninterpreter /usr/bin/qemu-aarch64-static\nmagic \\x7f\\x45\\x4c\\x46\\x02\nmask \\xff\\xff\\xff\\xff\\xfe\ncredentials no\npreserve no\nfix_binary yes\n"
        );
        let mut r = rule("F");
        r.interpreter = "relative".into();
        assert!(matches!(
            import_file(&r, "binfmtd"),
            Err(Unexpressible::Invalid { .. })
        ));
    }

    #[test]
    fn admin_records() {
        // As update-binfmts 2.2.2 writes them (checked on bookworm).
        let qemu = "qemu-aarch64\nmagic\n0\n\\x7fELF\\x02\n\\xff\\xff\\xff\\xff\\xfe\n/usr/bin/qemu-aarch64-static\n\nno\nyes\nyes\n";
        let r = parse_admin("qemu-aarch64", qemu).unwrap();
        assert_eq!(r.package, "qemu-aarch64");
        assert_eq!(r.rule, Some(rule("PF")));
        let creds = qemu.replace("\nno\nyes\nyes\n", "\nyes\nno\nno\n");
        assert_eq!(
            parse_admin("qemu-aarch64", &creds).unwrap().rule,
            Some(rule("OC"))
        );
        let ext = "python3.11\nextension\n\npyc\n\n/usr/bin/python3.11\n\nno\nno\nno\n";
        assert_eq!(
            parse_admin("py", ext).unwrap().rule.unwrap().matcher,
            Matcher::Extension {
                extension: "pyc".into()
            }
        );
        let detector = qemu.replace("static\n\n", "static\n/usr/bin/detect\n");
        assert_eq!(parse_admin("d", &detector).unwrap().rule, None);
        for bad in [
            "short\n",
            &qemu.replace("magic\n", "bogus\n"),
            &qemu.replace("\n0\n", "\nzero\n"),
            &qemu.replace("\\x7f", "\\xZZ"),
            &qemu.replace("\nyes\nyes\n", "\nmaybe\nyes\n"),
        ] {
            assert!(parse_admin("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn attribution_needs_the_exact_entry() {
        let rec = AdminRecord {
            package: "qemu-user-static".into(),
            rule: Some(rule("PF")),
        };
        let records = vec![(PathBuf::from("/var/lib/binfmts/qemu-aarch64"), rec)];
        let entry = |flags: &str, interp: &str| Entry {
            name: "qemu-aarch64".into(),
            enabled: true,
            interpreter: interp.into(),
            flags: Flags::parse(flags).unwrap(),
            matcher: rule("").matcher,
        };
        assert_eq!(
            attribute(&entry("PF", "/usr/bin/qemu-aarch64-static"), &records).as_deref(),
            Some("binfmt-support package qemu-user-static (/var/lib/binfmts/qemu-aarch64)")
        );
        assert_eq!(
            attribute(&entry("F", "/usr/bin/qemu-aarch64-static"), &records),
            None
        );
        assert_eq!(attribute(&entry("PF", "/usr/bin/other"), &records), None);
    }
}
