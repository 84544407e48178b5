//! Catalog consistency: every name resolves to one handler, and real binaries match one qemu handler.
#![allow(clippy::unwrap_used)] // tests may unwrap (see the brief); a failure is the assertion

mod common;

use binfmtd::catalog::{Catalog, Handler, Translator};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Every word a handler answers to: name, arch, aliases, platforms and their `os/arch` bases.
fn words(h: &Handler) -> Vec<String> {
    let mut w = vec![h.name.clone(), h.arch.clone()];
    w.extend(h.aliases.iter().cloned());
    for p in &h.platforms {
        w.push(p.clone());
        w.push(p.split('/').take(2).collect::<Vec<_>>().join("/"));
    }
    w.sort();
    w.dedup();
    w
}

#[test]
fn no_word_names_two_qemu_handlers() {
    let c = Catalog::embedded().unwrap();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    let mut clashes = Vec::new();
    for h in c.handlers.values() {
        for w in words(h) {
            assert_eq!(
                w,
                w.to_ascii_lowercase(),
                "{}: {w:?} is not lowercase",
                h.name
            );
            // Rosetta, FEX and box64 share x86_64 and linux/amd64 with qemu-x86_64 by design;
            // their own names and aliases must still be unique.
            let shared = h.translator != Translator::Qemu
                && (w == h.arch
                    || h.platforms
                        .iter()
                        .any(|p| *p == w || p.starts_with(&format!("{w}/"))));
            if shared {
                continue;
            }
            if let Some(prev) = owner.insert(w.clone(), h.name.clone()) {
                if prev != h.name {
                    clashes.push(format!("{w:?}: {prev} and {}", h.name));
                }
            }
        }
    }
    assert!(
        clashes.is_empty(),
        "names claimed twice:\n{}",
        clashes.join("\n")
    );
}

#[test]
fn every_word_resolves_to_its_handler() {
    let c = Catalog::embedded().unwrap();
    for h in c.handlers.values() {
        let ws = if h.translator == Translator::Qemu {
            words(h)
        } else {
            let mut w = vec![h.name.clone()];
            w.extend(h.aliases.iter().cloned());
            w
        };
        for w in ws {
            assert_eq!(c.resolve(&w).as_deref(), Some(h.name.as_str()), "{w:?}");
        }
    }
    for h in c
        .handlers
        .values()
        .filter(|h| h.translator != Translator::Qemu)
    {
        assert_eq!(
            c.resolve(&h.arch).as_deref(),
            Some("qemu-x86_64"),
            "{}",
            h.name
        );
    }
}

fn header(path: &Path) -> Vec<u8> {
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .take(256)
        .read_to_end(&mut buf)
        .unwrap();
    buf
}

/// Names of the qemu handlers whose magic/mask match the file, as the kernel would compare.
fn qemu_matches(c: &Catalog, path: &Path) -> Vec<String> {
    let head = header(path);
    c.handlers
        .values()
        .filter(|h| h.translator == Translator::Qemu)
        .filter(|h| h.matcher().unwrap().matches(&head, None))
        .map(|h| h.name.clone())
        .collect()
}

#[test]
fn the_test_binary_itself_matches_exactly_one_qemu_handler() {
    let c = Catalog::embedded().unwrap();
    let exe = std::env::current_exe().unwrap();
    let m = qemu_matches(&c, &exe);
    assert_eq!(m.len(), 1, "{}: {m:?}", exe.display());
}

#[test]
fn cross_compiled_binaries_match_only_their_handler() {
    for cc in [
        "aarch64-linux-gnu-gcc",
        "arm-linux-gnueabihf-gcc",
        "riscv64-linux-gnu-gcc",
    ] {
        if !common::require_tool(cc) {
            return;
        }
    }
    let c = Catalog::embedded().unwrap();
    let dir = common::cross_bins();
    for (file, want) in [
        ("hello-aarch64-static", "qemu-aarch64"),
        ("hello-aarch64-dynamic", "qemu-aarch64"),
        ("hello-armhf-dynamic", "qemu-arm"),
        ("hello-riscv64-static", "qemu-riscv64"),
        ("hello-riscv64-dynamic", "qemu-riscv64"),
    ] {
        assert_eq!(
            qemu_matches(&c, &dir.join(file)),
            vec![want.to_string()],
            "{file}"
        );
    }
}
