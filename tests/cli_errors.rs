//! The `binfmtd` binary's error paths end to end: bad configuration exits 2 naming the file,
//! a closed stdout ends quietly, non-UTF-8 arguments are refused cleanly.
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

/// Runs binfmtd with stdout a pipe whose reader is already closed: every write gets EPIPE.
fn with_closed_stdout(args: &[&std::ffi::OsStr]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(common::binfmtd_bin())
        .args(args)
        .env("BINFMTD_BINFMT_MISC", "/nonexistent-binfmt-misc")
        .env("BINFMTD_NO_DAEMON", "1")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

/// A reader that goes away (`| true`, `| head -c1`) ends binfmtd quietly with the command's
/// own exit code, never with a panic.
#[test]
fn closed_stdout_is_a_quiet_exit() {
    let cases: [(&[&str], i32); 6] = [
        (&["platforms", "--known", "--json"], 0),
        (&["platforms", "--known"], 0),
        (&["status"], 0),
        (&["status", "--json"], 0),
        (&["doctor", "/bin/true"], 0),
        (&["doctor", "/nonexistent-program"], 1),
    ];
    for (args, code) in cases {
        let a: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let o = with_closed_stdout(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    }
    // The same through a shell pipeline, as users type it.
    let b = common::binfmtd_bin();
    for pipeline in [
        format!("{} platforms --json --known | true", b.display()),
        format!("{} status | head -c1 >/dev/null", b.display()),
        format!("{} platforms --known | head -c1 >/dev/null", b.display()),
    ] {
        let o = Command::new("sh")
            .args(["-c", &pipeline])
            .env("BINFMTD_BINFMT_MISC", "/nonexistent-binfmt-misc")
            .env("BINFMTD_NO_DAEMON", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{pipeline}: {err}");
    }
}

/// Non-UTF-8 arguments: paths are taken as OS strings; where doctor cannot use one it says so
/// (exit 2), and words such as a platform list get clap's usage error (exit 2). No panics.
#[test]
fn non_utf8_arguments_do_not_panic() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"/tmp/\xffbinfmtd-test");
    let word = std::ffi::OsStr::from_bytes(b"linux/\xff");
    let os = std::ffi::OsStr::new;
    let cases: Vec<(Vec<&std::ffi::OsStr>, i32, &str)> = vec![
        (vec![os("doctor"), bad], 2, "not valid UTF-8"),
        (vec![os("doctor"), os("--json"), bad], 2, "not valid UTF-8"),
        (
            vec![os("doctor"), os("--root"), bad, os("/bin/sh")],
            2,
            "not valid UTF-8",
        ),
        (
            vec![os("install"), os("--dry-run"), word],
            2,
            "invalid UTF-8",
        ),
        (
            vec![os("install"), os("--json"), os("--dry-run"), word],
            2,
            "invalid UTF-8",
        ),
        (
            vec![os("platforms"), os("--known"), os("--config-dir"), bad],
            0,
            "HANDLER",
        ),
        (
            vec![
                os("doctor"),
                os("/bin/sh"),
                os("--run"),
                os("--"),
                os("-c"),
                os("exit 0"),
                bad,
            ],
            0,
            "ran as",
        ),
    ];
    for (args, code, want) in cases {
        let o = Command::new(common::binfmtd_bin())
            .args(&args)
            .env("BINFMTD_BINFMT_MISC", "/nonexistent-binfmt-misc")
            .env("BINFMTD_NO_DAEMON", "1")
            .output()
            .unwrap();
        let out = text(&o);
        assert!(!out.contains("panicked"), "{args:?}: {out}");
        assert_eq!(o.status.code(), Some(code), "{args:?}: {out}");
        assert!(out.contains(want), "{args:?}: {want}: {out}");
    }
}

/// Every qemu-*-static of Debian's qemu-user-static is either a handler or listed as not
/// registrable (no binfmt_misc magic exists for it).
#[test]
fn known_platforms_cover_every_debian_qemu_binary() {
    let o = binfmtd(&["platforms", "--known"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.lines().any(|l| l.starts_with("qemu-cris ")), "{out}");
    assert!(
        out.contains("not registrable: qemu-nios2: ") && out.contains("binfmt_misc magic"),
        "{out}"
    );
    let Ok(list) = Command::new("dpkg")
        .args(["-L", "qemu-user-static"])
        .output()
    else {
        eprintln!("SKIPPED the dpkg cross-check: no dpkg");
        return;
    };
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    for line in list.lines() {
        let Some(arch) = line
            .strip_prefix("/usr/bin/qemu-")
            .and_then(|r| r.strip_suffix("-static"))
        else {
            continue;
        };
        let handler = format!("qemu-{arch} ");
        let refused = format!("not registrable: qemu-{arch}: ");
        assert!(
            out.lines()
                .any(|l| l.starts_with(&handler) || l.starts_with(&refused)),
            "qemu-{arch}-static is neither a handler nor listed as not registrable:\n{out}"
        );
    }
}
