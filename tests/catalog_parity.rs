//! The catalog's magic, mask and offset equal Debian's `/usr/lib/binfmt.d/qemu-*.conf`, byte for byte.
#![allow(clippy::unwrap_used)] // tests may unwrap (see the brief); a failure is the assertion

mod common;

use binfmtd::catalog::Catalog;
use binfmtd::kernel::codec::decode;
use binfmtd::model::{to_hex, Matcher};
use std::path::PathBuf;

/// Debian confs deliberately absent from the catalog (none: cris, which QEMU's own table
/// lacks, is in the catalog with Debian's magic; nios2 has no conf at all).
const NOT_IN_CATALOG: &[&str] = &[];

/// Fewer Debian confs than this means the comparison proved little (bookworm ships 29).
const MIN_COMPARED: usize = 25;

/// Where Debian's qemu-user-static puts its confs; override with BINFMTD_PARITY_DIR.
fn conf_dir() -> PathBuf {
    std::env::var_os("BINFMTD_PARITY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/binfmt.d"))
}

fn debian_confs() -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(conf_dir()) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("qemu-") && name.ends_with(".conf")
        })
        .collect();
    files.sort();
    files
}

fn magic_parts(m: &Matcher) -> (usize, &[u8], Option<&[u8]>) {
    match m {
        Matcher::Magic {
            offset,
            magic,
            mask,
        } => (*offset, magic, mask.as_deref()),
        Matcher::Extension { extension } => panic!("unexpected extension matcher .{extension}"),
    }
}

#[test]
fn catalog_matches_debian_binfmt_d_byte_for_byte() {
    let files = debian_confs();
    if files.is_empty() {
        let msg = format!(
            "no qemu-*.conf in {}; install Debian's qemu-user-static (apt-get install -y qemu-user-static)",
            conf_dir().display()
        );
        assert!(!common::in_ci(), "{msg} (CI is set, so this is a failure)");
        eprintln!("skipping parity test: {msg}");
        return;
    }

    let catalog = Catalog::embedded().unwrap();
    let mut compared = Vec::new();
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{}: expected one register line",
            file.display()
        );
        let rule = decode(lines[0]).unwrap();
        let arch = rule
            .name
            .strip_prefix("qemu-")
            .unwrap_or_else(|| panic!("{}: entry name {:?}", file.display(), rule.name));
        if NOT_IN_CATALOG.contains(&arch) {
            eprintln!(
                "not compared: {} (not a current QEMU target)",
                file.display()
            );
            continue;
        }
        let Some(handler) = catalog.qemu_for_arch(arch) else {
            problems.push(format!(
                "{}: no qemu handler for arch {arch}",
                file.display()
            ));
            continue;
        };
        assert_eq!(handler.name, rule.name, "{}", file.display());
        let ours = handler.matcher().unwrap();
        let (d_off, d_magic, d_mask) = magic_parts(&rule.matcher);
        let (c_off, c_magic, c_mask) = magic_parts(&ours);
        if (d_off, d_magic, d_mask) != (c_off, c_magic, c_mask) {
            problems.push(format!(
                "{arch}: Debian offset {d_off} magic {} mask {}\n{:width$}  catalog offset {c_off} magic {} mask {}",
                to_hex(d_magic),
                d_mask.map(to_hex).unwrap_or_default(),
                "",
                to_hex(c_magic),
                c_mask.map(to_hex).unwrap_or_default(),
                width = arch.len(),
            ));
        }
        compared.push(arch.to_string());
    }
    assert!(
        problems.is_empty(),
        "catalog differs from {}:\n{}",
        conf_dir().display(),
        problems.join("\n")
    );
    assert!(
        compared.len() >= MIN_COMPARED,
        "only {} Debian confs compared ({}); expected at least {MIN_COMPARED}",
        compared.len(),
        compared.join(" ")
    );
    eprintln!(
        "compared {} Debian confs: {}",
        compared.len(),
        compared.join(" ")
    );
}
