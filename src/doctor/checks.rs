//! Pure judgement: (subject facts, root view, kernel snapshot, host facts) -> findings.

use super::context::HostFacts;
use super::elf::{ElfFacts, Linkage};
use super::findings::{Finding, FindingId as Id, Severity};
use super::inspect::{InterpInfo, Loaded, RootLoader, Subject};
use super::rootfs::OpenError;
use super::sniff::FileKind;
use crate::catalog::Translator;
use crate::kernel::{codec, Snapshot};
use crate::model::Entry;
use std::collections::BTreeMap;

/// Everything the checks look at besides the subject.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub snapshot: &'a Snapshot,
    pub host: &'a HostFacts,
    pub interps: &'a BTreeMap<String, InterpInfo>,
    /// Loaders present in the root (consulted when the binary's loader is missing).
    pub root_loaders: &'a [RootLoader],
    pub root_is_host: bool,
    /// How the root is named in messages, e.g. `/` or `/srv/arm64-root`.
    pub root_name: &'a str,
    /// Entries binfmtd owns: re-installing them needs no `--force`.
    pub owned: &'a std::collections::BTreeSet<String>,
}

impl View<'_> {
    /// `binfmtd install ENTRY OPTIONS`, with `--force` only when binfmtd does not own the
    /// entry (its own entries are replaced without it).
    pub fn reinstall(&self, w: &Entry, options: &str) -> String {
        let force = if self.owned.contains(&w.name) {
            ""
        } else {
            " --force"
        };
        let options = if options.is_empty() {
            String::new()
        } else {
            format!(" {options}")
        };
        format!("binfmtd install {}{options}{force}", w.name)
    }

    /// True when the host CPU runs the binary's ISA without emulation.
    pub fn runs_natively(&self, f: &super::elf::ElfFacts) -> bool {
        f.qemu_arch
            .as_ref()
            .is_some_and(|a| self.host.native.contains(a))
    }
}

/// The platform word to give `binfmtd install`.
fn install_word(f: &ElfFacts) -> String {
    f.platform
        .clone()
        .or_else(|| f.qemu_arch.clone())
        .unwrap_or_else(|| "the matching handler".into())
}

/// Diagnoses one subject. Scripts are followed by the caller; this judges one file.
pub fn check(s: &Subject, v: &View<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(err) = s.open_error {
        out.push(open_problem(s, err));
        return out;
    }
    mode_check(s, &mut out);
    let file_name = s.path.rsplit('/').next();
    let winner = v
        .snapshot
        .mounted
        .then(|| {
            codec::winner(
                &v.snapshot.entries,
                v.snapshot.enabled,
                &s.header,
                file_name,
            )
        })
        .flatten();
    match &s.kind {
        FileKind::Elf => {}
        FileKind::Script { .. } => return out,
        other => {
            out.push(match winner {
                Some(w) => handled_non_elf(w),
                None => not_elf(s, other),
            });
            return out;
        }
    }
    let loaded = match &s.elf {
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            if super::checks_load::unparsed(s, &e.to_string(), v, &mut out) {
                return out;
            }
            out.push(
                Finding::error(
                    Id::ElfCorrupt,
                    format!("{} is a truncated or corrupt ELF file: {e}", s.path),
                )
                .with("path", &s.path)
                .with("size", s.meta.map(|m| m.size).unwrap_or(0))
                .fix("re-download or rebuild the file; compare its checksum with the original"),
            );
            return out;
        }
        None => return out,
    };
    let f = &loaded.facts;
    if f.e_type != object::elf::ET_EXEC && f.e_type != object::elf::ET_DYN {
        let what = match f.e_type {
            object::elf::ET_REL => "a relocatable object file (.o)",
            object::elf::ET_CORE => "a core dump",
            _ => "an ELF file of unknown type",
        };
        out.push(
            Finding::error(
                Id::ElfNotExecutable,
                format!("{} is {what}, not a program", s.path),
            )
            .with("e_type", f.e_type)
            .fix("link it into an executable first"),
        );
        return out;
    }
    if let Some(foreign) = foreign_os(s, f, v) {
        out.push(foreign);
        return out;
    }
    if super::checks_load::load_checks(s, v, &mut out) {
        return out;
    }
    let library = f.linkage == Linkage::SharedLibrary || !s.as_program;
    if !library {
        handler_checks(s, loaded, winner, v, &mut out);
    }
    super::checks_deps::loader_checks(s, loaded, v, &mut out);
    super::checks_deps::library_checks(s, &mut out);
    super::checks_cpu::cpu_checks(s, loaded, winner, v, &mut out);
    out
}

/// A program for another operating system (by its OSABI byte): an error, or a warning when
/// the byte is all that is foreign.
fn foreign_os(s: &Subject, f: &ElfFacts, v: &View<'_>) -> Option<Finding> {
    if matches!(
        f.osabi,
        object::elf::ELFOSABI_SYSV | object::elf::ELFOSABI_GNU
    ) {
        return None;
    }
    linux_despite_osabi(s, f, v).or_else(|| {
        Some(
            Finding::error(
                Id::ElfForeignOs,
                format!(
                    "{} is built for another operating system (ELF OSABI {}); Linux cannot run it",
                    s.path,
                    osabi_name(f.osabi)
                ),
            )
            .with("osabi", f.osabi)
            .fix("use a Linux build of the program"),
        )
    })
}

/// A foreign OSABI byte on a program whose GNU ABI note says Linux and that its loader takes:
/// Linux and qemu-user ignore the byte, so it runs (a warning, unless the loader refuses it).
fn linux_despite_osabi(s: &Subject, f: &ElfFacts, v: &View<'_>) -> Option<Finding> {
    let l = s.loadable.as_ref()?;
    let loads = if super::checks_load::native(l, v) {
        l.native.is_ok()
    } else {
        l.declared.is_ok()
    };
    if !f.linux_abi_tag || !loads {
        return None;
    }
    Some(
        Finding::warning(
            Id::ElfForeignOs,
            format!(
                "{}'s ELF OSABI byte says {}, but its GNU ABI note says Linux: Linux's loader and qemu-user ignore the byte, so it runs; other tools may refuse it",
                s.path,
                osabi_name(f.osabi)
            ),
        )
        .with("osabi", f.osabi)
        .fix("rebuild the file, or set byte 7 of its header (EI_OSABI) to 0"),
    )
}

fn mode_check(s: &Subject, out: &mut Vec<Finding>) {
    // Shared libraries are mapped, not executed: they need no execute bit.
    let library = matches!(&s.elf, Some(Ok(l)) if l.facts.linkage == Linkage::SharedLibrary);
    if !s.as_program {
        return;
    }
    if let Some(m) = s.meta.filter(|m| !m.executable() && !library) {
        out.push(
            Finding::error(
                Id::NotExecutable,
                format!("{} has no execute permission (mode {:o})", s.path, m.mode),
            )
            .with("path", &s.path)
            .fix(format!("chmod +x {}", s.path)),
        );
    }
}

fn osabi_name(o: u8) -> String {
    match o {
        object::elf::ELFOSABI_FREEBSD => "FreeBSD".into(),
        object::elf::ELFOSABI_NETBSD => "NetBSD".into(),
        object::elf::ELFOSABI_OPENBSD => "OpenBSD".into(),
        object::elf::ELFOSABI_SOLARIS => "Solaris".into(),
        object::elf::ELFOSABI_HPUX => "HP-UX".into(),
        o => format!("{o}"),
    }
}

fn open_problem(s: &Subject, err: OpenError) -> Finding {
    match err {
        OpenError::NotRegular(m) => Finding::error(
            Id::NotRegularFile,
            format!(
                "{} is a {}; only regular files can be executed",
                s.path,
                m.kind.describe()
            ),
        )
        .with("path", &s.path)
        .with("type", m.kind.describe())
        .fix("point doctor at the program file itself"),
        OpenError::Lookup(e) => Finding::error(
            Id::NotFound,
            format!("{} cannot be opened inside the root: {e}", s.path),
        )
        .with("path", &s.path)
        .fix("check the path; absolute symlinks are resolved inside --root, as in a container"),
    }
}

/// A file that is not ELF but that some binfmt_misc entry handles (a jar, a .NET exe...).
fn handled_non_elf(w: &Entry) -> Finding {
    Finding::info(
        Id::UnknownFormat,
        format!(
            "not an ELF program, but binfmt_misc entry {:?} handles it with {}",
            w.name,
            w.interpreter.display()
        ),
    )
    .about(&w.name)
    .with("entry", &w.name)
}

fn not_elf(s: &Subject, kind: &FileKind) -> Finding {
    match kind {
        FileKind::Empty => Finding::error(
            Id::EmptyFile,
            format!(
                "{} is empty (0 bytes); the kernel reports \"exec format error\"",
                s.path
            ),
        )
        .fix("the file was truncated or never written; rebuild or re-download it"),
        FileKind::MachO { detail } => Finding::error(
            Id::MachO,
            format!(
                "{} is a macOS program ({detail}); Linux cannot run it",
                s.path
            ),
        )
        .with("format", detail)
        .fix("use the Linux build of the program (or run it on macOS)"),
        FileKind::Pe => Finding::error(
            Id::PeBinary,
            format!(
                "{} is a Windows (PE) program; Linux cannot run it without Wine",
                s.path
            ),
        )
        .fix("use the Linux build, or install Wine and register it for PE files"),
        FileKind::Text => Finding::error(
            Id::TextFile,
            format!(
                "{} is a text file without a #! line; exec fails with \"exec format error\"",
                s.path
            ),
        )
        .fix(format!(
            "add a #! line such as `#!/bin/sh`, or run it with an interpreter: sh {}",
            s.path
        )),
        _ => Finding::error(
            Id::UnknownFormat,
            format!("{} is not a known executable format", s.path),
        )
        .with(
            "first bytes",
            crate::model::to_hex(&s.header[..s.header.len().min(16)]),
        )
        .fix("check what produced the file (`file` names most formats)"),
    }
}

fn entry_translator(e: &Entry, v: &View<'_>) -> Option<Translator> {
    v.interps.get(&e.name).and_then(|i| i.translator)
}

fn handler_checks(
    s: &Subject,
    l: &Loaded,
    winner: Option<&Entry>,
    v: &View<'_>,
    out: &mut Vec<Finding>,
) {
    let f = &l.facts;
    let arch = f
        .qemu_arch
        .clone()
        .unwrap_or_else(|| f.machine_name.clone());
    if v.runs_natively(f) {
        out.push(native_finding(f, &arch, winner, v));
        return;
    }
    if !binfmt_usable(f, v, out) {
        return;
    }
    let file_name = s.path.rsplit('/').next();
    let matching: Vec<&Entry> = v
        .snapshot
        .entries
        .iter()
        .filter(|e| e.matcher.matches(&s.header, file_name))
        .collect();
    let Some(w) = winner else {
        out.push(no_winner(f, &arch, &matching, v));
        return;
    };
    shadow_check(w, &matching, v, out);
    interpreter_checks(w, v, out);
    flag_checks(s, w, v, out);
}

/// A natively runnable ISA: fine, unless an entry still routes it through an emulator.
fn native_finding(f: &ElfFacts, arch: &str, winner: Option<&Entry>, v: &View<'_>) -> Finding {
    match winner {
        Some(w) => Finding::warning(Id::Native, format!("{arch} runs natively here, but binfmt_misc entry {:?} matches first and routes it through {}", w.name, w.interpreter.display()))
            .about(&w.name)
            .with("entry", &w.name)
            .fix(format!("remove the entry for a native ISA: binfmtd uninstall {}", w.name)),
        None => Finding::info(Id::Native, format!("{} runs natively on this {} host; no emulator is involved", f.describe(), v.host.arch)).about(arch),
    }
}

/// binfmt_misc itself: mounted and enabled (else no entry can help: false), and whether some
/// entries could not be read.
fn binfmt_usable(f: &ElfFacts, v: &View<'_>, out: &mut Vec<Finding>) -> bool {
    let snap = v.snapshot;
    if !snap.mounted {
        out.push(
            Finding::error(Id::BinfmtNotMounted, format!("binfmt_misc is not mounted at {}; every foreign program, such as this {}, fails with \"exec format error\"", snap.path.display(), f.describe()))
                .with("path", snap.path.display())
                .fix(format!("binfmtd install {}  (mounts binfmt_misc and registers the handler)", install_word(f))),
        );
        return false;
    }
    if !snap.enabled {
        out.push(
            Finding::error(Id::BinfmtDisabled, "binfmt_misc is globally disabled: every foreign exec fails with \"exec format error\"")
                .with("status", snap.path.join("status").display())
                .fix(format!("echo 1 > {}", snap.path.join("status").display())),
        );
        return false;
    }
    if !snap.unreadable.is_empty() {
        let names: Vec<&str> = snap.unreadable.iter().map(|(n, _)| n.as_str()).collect();
        out.push(
            Finding::warning(
                Id::HandlerUnreadable,
                format!(
                    "{} binfmt_misc entries could not be read; the verdict ignores them",
                    names.len()
                ),
            )
            .with("entries", names.join(", "))
            .fix("run doctor as root, or inspect the entries with `binfmtd status`"),
        );
    }
    true
}

/// No enabled entry takes the program: none matches, or the matching ones are disabled.
fn no_winner(f: &ElfFacts, arch: &str, matching: &[&Entry], v: &View<'_>) -> Finding {
    let word = install_word(f);
    if matching.is_empty() {
        return Finding::error(Id::NoHandler, format!("no binfmt_misc entry matches this {arch} program; exec fails with \"exec format error\""))
            .about(arch)
            .with("platform", &word)
            .with("entries checked", v.snapshot.entries.len())
            .fix(format!("binfmtd install {word}"));
    }
    let names: Vec<&str> = matching.iter().map(|e| e.name.as_str()).collect();
    Finding::error(
        Id::HandlerDisabled,
        format!(
            "the entries matching this {arch} program are disabled: {}",
            names.join(", ")
        ),
    )
    .about(names.join(","))
    .with("disabled entries", names.join(", "))
    .fix(format!("binfmtd enable {}", names[0]))
}

/// Several enabled entries match: the newest wins; a warning when the losers use another
/// translator, a note otherwise.
fn shadow_check(w: &Entry, matching: &[&Entry], v: &View<'_>, out: &mut Vec<Finding>) {
    let enabled: Vec<&&Entry> = matching.iter().filter(|e| e.enabled).collect();
    if enabled.len() <= 1 {
        return;
    }
    let losers: Vec<&str> = enabled.iter().skip(1).map(|e| e.name.as_str()).collect();
    let differs = enabled
        .iter()
        .any(|e| entry_translator(e, v) != entry_translator(w, v));
    let msg = format!(
        "{} enabled entries match; {:?} wins because it was registered last (the kernel tries the newest first), shadowing {}",
        enabled.len(),
        w.name,
        losers.join(", ")
    );
    let sev = if differs {
        Severity::Warning
    } else {
        Severity::Info
    };
    out.push(
        Finding::new(Id::HandlerShadowed, sev, msg)
            .about(&w.name)
            .with(
                "winner",
                format!("{} -> {}", w.name, w.interpreter.display()),
            )
            .with("shadowed", losers.join(", "))
            .fix(format!(
                "to use another translator, remove or disable the winner: binfmtd disable {}",
                w.name
            )),
    );
}

fn interpreter_checks(w: &Entry, v: &View<'_>, out: &mut Vec<Finding>) {
    let interp = w.interpreter.display().to_string();
    let Some(info) = v.interps.get(&w.name) else {
        return;
    };
    let in_root = info.looked_up_in == "root";
    if in_root {
        let sev = if info.exists {
            Severity::Warning
        } else {
            Severity::Error
        };
        let msg = if info.exists {
            format!("entry {:?} lacks F, so {interp} is looked up inside {} at every exec; it exists there now, but a container or chroot without it fails", w.name, v.root_name)
        } else {
            format!("entry {:?} lacks F, so the kernel looks for {interp} inside {}, where it does not exist: exec fails with \"No such file or directory\"", w.name, v.root_name)
        };
        out.push(
            Finding::new(Id::HandlerNeedsFixBinary, sev, msg)
                .about(&w.name)
                .with("entry", &w.name)
                .with(
                    "flags",
                    if w.flags.to_string().is_empty() {
                        "(none)".to_string()
                    } else {
                        w.flags.to_string()
                    },
                )
                .with("interpreter", &interp)
                .fix(format!(
                    "re-register with F ({}) so the interpreter is opened once on the host",
                    v.reinstall(w, "")
                )),
        );
        if !info.exists {
            return;
        }
    } else if !info.exists {
        out.push(
            Finding::new(
                Id::InterpreterMissing,
                held_severity(w),
                format!(
                    "entry {:?} names interpreter {interp}, which does not exist{}",
                    w.name,
                    held_note(w)
                ),
            )
            .about(&w.name)
            .with("interpreter", &interp)
            .with("lookup", info.error.as_deref().unwrap_or("missing"))
            .fix(format!(
                "install qemu-user-static (or the translator), then {}",
                v.reinstall(w, "")
            )),
        );
        return;
    }
    if !info.executable {
        out.push(
            Finding::new(
                Id::InterpreterNotExecutable,
                held_severity(w),
                format!(
                    "interpreter {interp} of entry {:?} is not executable{}",
                    w.name,
                    held_note(w)
                ),
            )
            .about(&w.name)
            .with("interpreter", &interp)
            .with(
                "problem",
                info.error.as_deref().unwrap_or("no execute permission"),
            )
            .fix(format!("chmod 755 {interp}")),
        );
    }
    if info.dynamic == Some(true) {
        let sev = if v.root_is_host {
            Severity::Warning
        } else {
            Severity::Error
        };
        out.push(
            Finding::new(Id::InterpreterDynamic, sev, format!("interpreter {interp} of entry {:?} is dynamically linked: inside a container or foreign root its host libraries are missing", w.name))
                .about(&w.name)
                .with("interpreter", &interp)
                .fix("install the statically linked interpreter (Debian: qemu-user-static) and re-register with F"),
        );
    }
}

/// With F the kernel opened the interpreter at registration and runs that open file, so a
/// deleted or no longer executable interpreter does not stop the entry (a warning); without
/// F every exec fails (an error).
fn held_severity(w: &Entry) -> Severity {
    if w.flags.fix_binary {
        Severity::Warning
    } else {
        Severity::Error
    }
}

fn held_note(w: &Entry) -> &'static str {
    if w.flags.fix_binary {
        "; the entry has F, so the kernel runs the file it opened at registration and programs still run, but registering the entry again (after a reboot, or `binfmtd install`) will fail"
    } else {
        ""
    }
}

fn flag_checks(s: &Subject, w: &Entry, v: &View<'_>, out: &mut Vec<Finding>) {
    let Some(m) = s.meta else { return };
    if (m.setuid() || m.setgid()) && !w.flags.credentials {
        let what = if m.setuid() { "setuid" } else { "setgid" };
        out.push(
            Finding::error(Id::SetuidNeedsCredentials, format!("{} is {what}, but entry {:?} lacks C: it runs with the caller's credentials (sudo: \"effective uid is not 0\")", s.path, w.name))
                .about(&w.name)
                .with("mode", format!("{:o}", m.mode))
                .with("entry flags", w.flags)
                .with("risk of C", "every user who can reach a setuid foreign binary runs the interpreter as root, and the interpreter obeys that user's environment (QEMU_LOG_FILENAME creates root-owned files, QEMU_LD_PREFIX changes what root loads)")
                .fix(format!("only where every user who can run it is trusted with root: {} (see docs/security.md); otherwise run the program as root directly", v.reinstall(w, "--credentials"))),
        );
    }
    let base = s.path.rsplit('/').next().unwrap_or("");
    let multicall = matches!(base, "busybox" | "toybox") || s.aliases >= 2;
    let shell = matches!(
        base,
        "sh" | "bash" | "dash" | "ash" | "zsh" | "ksh" | "mksh"
    );
    if (multicall || shell) && !w.flags.preserve_argv0 {
        let why = if multicall {
            format!("a multi-call binary ({} other names link to it) that picks its applet from argv[0]", s.aliases)
        } else {
            "a shell that detects login mode from a leading '-' in argv[0]".to_string()
        };
        out.push(
            Finding::warning(
                Id::Argv0NeedsPreserve,
                format!(
                    "{} is {why}, but entry {:?} lacks P, so argv[0] is replaced by the full path",
                    s.path, w.name
                ),
            )
            .about(&w.name)
            .with("entry flags", w.flags)
            .fix(v.reinstall(w, "--preserve-argv0")),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "checks_tests.rs"]
mod tests;
