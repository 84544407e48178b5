//! The shape the code promises in docs/design.md, checked on every change: small functions,
//! a one-line doc comment opening every module, and the engine and daemon free of any
//! transport (zbus and the D-Bus adapter are named only at the edges).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Longest function allowed in src/, and the ceiling for the few data tables below.
const MAX_LINES: usize = 100;
const TABLE_MAX_LINES: usize = 120;
/// Functions that are one data table (a match from ISA to machine code), not logic.
const TABLES: &[(&str, &str)] = &[("src/probe/isa_code.rs", "exit_code")];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_test_file(rel: &str) -> bool {
    rel.ends_with("_tests.rs") || rel.ends_with("/tests.rs")
}

/// (name, first line, length) of every function body in a file, outside `mod tests`.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with("mod tests") {
            break;
        }
        let trimmed = line.trim_start();
        let is_fn = [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "async fn ",
            "pub async fn ",
        ]
        .iter()
        .any(|p| trimmed.starts_with(p));
        if is_fn && !line.trim_end().ends_with(';') {
            let indent = line.len() - trimmed.len();
            let close = format!("{}}}", " ".repeat(indent));
            let end = (i..lines.len())
                .find(|&j| lines[j].trim_end() == close)
                .unwrap_or(i);
            let name = trimmed
                .split("fn ")
                .nth(1)
                .unwrap_or_default()
                .split(['(', '<'])
                .next()
                .unwrap_or_default()
                .to_string();
            out.push((name, i + 1, end - i + 1));
            i = end;
        }
        i += 1;
    }
    out
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn all_sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    sources(&repo().join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(repo()).unwrap().display().to_string();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn no_function_is_longer_than_a_screen() {
    let mut long = Vec::new();
    for (rel, text) in all_sources().iter().filter(|(r, _)| !is_test_file(r)) {
        for (name, line, len) in functions(text) {
            let table = TABLES.iter().any(|(f, n)| f == rel && *n == name);
            let limit = if table { TABLE_MAX_LINES } else { MAX_LINES };
            if len > limit {
                long.push(format!(
                    "{rel}:{line} {name} has {len} lines (at most {limit})"
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these by responsibility:\n{}",
        long.join("\n")
    );
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    let missing: Vec<String> = all_sources()
        .into_iter()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(rel, _)| rel)
        .collect();
    assert!(missing.is_empty(), "no `//!` line: {missing:?}");
}

#[test]
fn only_the_edges_know_the_transport() {
    let edge = |rel: &str| {
        rel.starts_with("src/dbus/") || rel.starts_with("src/cli/") || rel == "src/main.rs"
    };
    let mut offenders = Vec::new();
    for (rel, text) in all_sources() {
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        if !edge(&rel) && (code.contains("zbus") || code.contains("crate::dbus")) {
            offenders.push(rel.clone());
        }
        if rel.starts_with("src/engine/")
            && (code.contains("crate::daemon") || code.contains("crate::cli"))
        {
            offenders.push(format!("{rel} (the engine calls no door)"));
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
}

#[test]
fn the_function_finder_sees_functions() {
    let text = "//! x\nfn a() {\n    1;\n}\n\npub fn b(x: u8) -> u8 {\n    x\n}\n#[cfg(test)]\nmod tests {\n    fn c() {}\n}\n";
    let got = functions(text);
    assert_eq!(got, vec![("a".into(), 2, 3), ("b".into(), 6, 3)]);
}
