//! The `binfmtd` binary's error paths end to end: bad configuration exits 2 naming the file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn binfmtd(args: &[&str]) -> Output {
    Command::new(common::binfmtd_bin())
        .args(args)
        .env("BINFMTD_BINFMT_MISC", "/nonexistent-binfmt-misc")
        .env("BINFMTD_NO_DAEMON", "1")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A config dir whose interpreters.d holds one drop-in `file` with `body`.
fn config_with_dropin(file: &str, body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("interpreters.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(file), body).unwrap();
    dir
}

fn config_arg(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

#[test]
fn malformed_dropin_exits_2_naming_the_file() {
    let cases = [
        ("broken.toml", "name = \"broken\n"),
        ("nomagic.toml", "name = \"x\"\ntranslator = \"qemu\"\narch = \"x\"\nfamily = \"x\"\n"),
        (
            "colon.toml",
            "name = \"qemu:colon\"\ntranslator = \"qemu\"\narch = \"colon\"\nfamily = \"colon\"\nmagic = '\\x7f'\ninterpreters = [\"/usr/bin/a\"]\nflags = \"F\"\n",
        ),
    ];
    for (file, body) in cases {
        let cfg = config_with_dropin(file, body);
        for json in [false, true] {
            let mut args = vec![
                "platforms",
                "--known",
                "--config-dir",
                config_arg(cfg.path()),
            ];
            if json {
                args.push("--json");
            }
            let o = binfmtd(&args);
            assert_eq!(o.status.code(), Some(2), "{file}: {}", text(&o));
            assert!(text(&o).contains(file), "{file}: {}", text(&o));
            assert!(!text(&o).contains("panicked"), "{}", text(&o));
        }
    }
    // doctor reads the catalog too: 2 (usage/I-O), never 1 ("problems found").
    let cfg = config_with_dropin("broken.toml", "name = \"broken\n");
    let o = binfmtd(&[
        "doctor",
        "--config-dir",
        config_arg(cfg.path()),
        "/bin/true",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("broken.toml"), "{}", text(&o));
}

/// A drop-in handler name with capitals was listed by `platforms --known` but unknown to
/// `install`; it is now refused at load (exit 2) with the file and the rule.
#[test]
fn dropin_name_with_capitals_is_refused_at_load() {
    let body = "name = \"My-Qemu\"\ntranslator = \"qemu\"\narch = \"mine\"\nfamily = \"mine\"\nmagic = '\\x7f\\x45\\x4c\\x46'\ninterpreters = [\"/usr/bin/true\"]\nflags = \"F\"\n";
    let cfg = config_with_dropin("mine.toml", body);
    for args in [
        &["platforms", "--known"][..],
        &["install", "--dry-run", "my-qemu"][..],
    ] {
        let mut a = args.to_vec();
        a.extend(["--config-dir", config_arg(cfg.path())]);
        let o = binfmtd(&a);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {out}");
        for want in [
            "mine.toml",
            "\"My-Qemu\"",
            "lowercase letters, digits, '-', '_' and '.'",
        ] {
            assert!(out.contains(want), "{args:?}: {want}: {out}");
        }
    }
    // The same handler named in lowercase is listed.
    let cfg = config_with_dropin("mine.toml", &body.replace("My-Qemu", "my-qemu"));
    let o = binfmtd(&[
        "platforms",
        "--known",
        "--config-dir",
        config_arg(cfg.path()),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("my-qemu"), "{}", text(&o));
}
