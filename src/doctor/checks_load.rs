//! Checks from the loader model (loadable.rs): what the kernel refuses or kills before the
//! program's first instruction, judged as the native loader reads the file when the host runs
//! its machine natively, and as the identity bytes declare it otherwise (emulators).

use super::checks::View;
use super::elf::machine_info;
use super::findings::{Finding, FindingId as Id};
use super::inspect::{Loadability, Subject};

/// True when the host's native loader takes this file (its machine, read the native way, is
/// one the CPU runs).
pub fn native(l: &Loadability, v: &View<'_>) -> bool {
    let lay = l.native_layout;
    let class = if lay.class64 { 64 } else { 32 };
    machine_info(l.native_machine, class, lay.le, 0)
        .1
        .is_some_and(|a| v.host.native.iter().any(|n| n == a))
}

fn refused(s: &Subject, why: &str) -> Finding {
    Finding::error(
        Id::ElfCorrupt,
        format!("{} cannot be loaded: {why}", s.path),
    )
    .with("path", &s.path)
    .with("size", s.meta.map(|m| m.size).unwrap_or(0))
    .fix(
        "the file is damaged: re-download or rebuild it and compare its checksum with the original",
    )
}

fn ident_warning(s: &Subject, damage: &str, parse: Option<&str>) -> Finding {
    let mut f = Finding::warning(
        Id::ElfCorrupt,
        format!("{}'s ELF identity bytes are damaged ({damage}); Linux's native loader ignores them, so it runs here, but emulators, debuggers and other tools refuse or misread the file", s.path),
    )
    .with("path", &s.path)
    .with("identity bytes", crate::model::to_hex(&s.header[..s.header.len().min(16)]));
    if let Some(p) = parse {
        f = f.with("read as declared", p);
    }
    f.fix("rebuild the file, or restore bytes 4-6 of its header (class, data, version)")
}

/// For an ELF the parser rejected: the loader model's verdict when the native loader takes
/// the file (an error, or a warning: damage the loader ignores). False for other machines,
/// where the parse error stands.
pub fn unparsed(s: &Subject, parse_error: &str, v: &View<'_>, out: &mut Vec<Finding>) -> bool {
    let Some(l) = s.loadable.as_ref() else {
        return false;
    };
    if !native(l, v) {
        let refusal = emulator_refusal(s, l);
        let stop = refusal.is_some();
        out.extend(refusal);
        return stop;
    }
    out.push(match (&l.native, &l.ident_damage) {
        (Err(why), _) => refused(s, why),
        (Ok(()), Some(d)) => ident_warning(s, d, Some(parse_error)),
        (Ok(()), None) => Finding::warning(
            Id::ElfCorrupt,
            format!("{} is damaged ({parse_error}), but not where Linux's loader looks: it loads, and doctor cannot check its loader and libraries", s.path),
        )
        .with("path", &s.path)
        .fix("re-download or rebuild the file; compare its checksum with the original"),
    });
    true
}

/// For a parsed ELF program: an error when the loader refuses it, a warning when only its
/// identity bytes are damaged; true when the other checks should not run (they would judge
/// a misread file).
pub fn load_checks(s: &Subject, v: &View<'_>, out: &mut Vec<Finding>) -> bool {
    let Some(l) = s.loadable.as_ref().filter(|_| s.as_program) else {
        return false;
    };
    if native(l, v) {
        if let Err(why) = &l.native {
            out.push(refused(s, why));
            return true;
        }
        if let Some(d) = &l.ident_damage {
            out.push(ident_warning(s, d, None));
            return true;
        }
        return false;
    }
    let refusal = emulator_refusal(s, l);
    let stop = refusal.is_some();
    out.extend(refusal);
    stop
}

/// For a foreign program: why an emulator's loader refuses it. When the identity bytes are
/// wrong and the header reads fine in the usual layout for its machine, they are the damage:
/// binfmt_misc entries match them and emulators check them.
fn emulator_refusal(s: &Subject, l: &Loadability) -> Option<Finding> {
    match (&l.declared, &l.native, &l.ident_damage) {
        (Err(_), Ok(()), Some(d)) => Some(refused(
            s,
            &format!("its ELF identity bytes are damaged ({d}): binfmt_misc entries match those bytes and emulators check them, so no handler takes it (exec format error)"),
        )),
        (Err(why), _, _) => Some(refused(s, why)),
        (Ok(()), _, _) => None,
    }
}
