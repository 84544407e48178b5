//! `binfmtd doctor` end to end through the real binary: the seed case in a bare root (exit 1)
//! and in the real Debian arm64 root inside `binfmtd sandbox` (exit 0, and a real --run),
//! JSON output, and usage/I/O errors (exit 2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn doctor(args: &[&str]) -> Output {
    Command::new(common::binfmtd_bin())
        .arg("doctor")
        .args(args)
        // Keep the host's (absent) binfmt_misc out of the verdict: point at an empty dir.
        .env("BINFMTD_BINFMT_MISC", "/nonexistent-binfmt-misc")
        .output()
        .unwrap()
}

/// `binfmtd sandbox` for a `doctor --run` inside it: started as nobody when the tests run as
/// root, because root's sandbox maps only uid 0 and doctor never runs a program as real root.
fn sandbox_for_run(bin: &Path) -> Command {
    if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin)
            .arg("sandbox");
        c
    } else {
        let mut c = Command::new(bin);
        c.arg("sandbox");
        c
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn seed_case_bare_root_exits_1_naming_the_loader() {
    if !common::require_tool("aarch64-linux-gnu-gcc") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    std::fs::copy(
        common::cross_bins().join("hello-aarch64-dynamic"),
        root.path().join("bin/hello"),
    )
    .unwrap();
    let r = root.path().to_str().unwrap();
    let o = doctor(&["--root", r, "/bin/hello"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("[loader-missing]") && out.contains("/lib/ld-linux-aarch64.so.1"),
        "{out}"
    );
    let o = doctor(&["--json", "--root", r, "/bin/hello"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], "binfmtd.doctor/v1");
    let ids: Vec<&str> = v["subjects"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"loader-missing") && ids.contains(&"binfmt-not-mounted"),
        "{ids:?}"
    );
}

#[test]
fn seed_case_in_arm64_root_with_a_private_handler_exits_0_and_runs() {
    if !common::require_tool("qemu-aarch64-static") || !common::require_tool("debootstrap") {
        return;
    }
    let root = common::arm64_root().to_str().unwrap().to_string();
    let bin = common::binfmtd_bin();
    let b = bin.to_str().unwrap();
    let o = Command::new(&bin)
        .args([
            "sandbox",
            "--platform",
            "linux/arm64",
            "--",
            b,
            "doctor",
            "--root",
            &root,
            "/usr/bin/dpkg",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("handler: binfmt_misc entry qemu-aarch64"),
        "{}",
        text(&o)
    );
    let o = sandbox_for_run(&bin)
        .args([
            "--platform",
            "linux/arm64",
            "--",
            b,
            "doctor",
            "--json",
            "--root",
            &root,
            "/usr/bin/dpkg",
            "--run",
            "--",
            "--version",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["run"]["status"]["status"], "exited");
    assert_eq!(v["run"]["status"]["code"], 0);
    // The whole root is clean apart from what Debian's defaults really lack.
    let o = Command::new(&bin)
        .args([
            "sandbox",
            "--platform",
            "linux/arm64",
            "--credentials",
            "--",
            b,
            "doctor",
            "--json",
            "--root",
            &root,
            "--all",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert!(v["summary"]["elf"].as_u64().unwrap() > 100);
    assert_eq!(v["summary"]["with_errors"], 0, "{}", text(&o));
}

#[test]
fn usage_and_io_errors_exit_2() {
    for (args, want) in [
        (&[][..], "give a PATH"),
        (&["--run"][..], "--run needs a PATH"),
        (
            &["--root", "/nonexistent-root-dir", "/bin/sh"][..],
            "cannot open root directory",
        ),
    ] {
        let o = doctor(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
    let o = doctor(&["--help"]);
    assert!(text(&o)
        .contains("Exit status: 0 = it will run, 1 = problems found, 2 = usage or I/O error"));
    assert!(Path::new("/bin/true").exists());
    let o = doctor(&["/bin/true"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn emulated_hangs_are_classified_with_guest_syscalls() {
    if !common::require_tool("aarch64-linux-gnu-gcc")
        || !common::require_tool("qemu-aarch64-static")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Readable by the sandbox's unprivileged user (see sandbox_for_run).
    std::fs::set_permissions(
        dir.path(),
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    let build = |name: &str, body: &str| {
        let src = dir.path().join(format!("{name}.c"));
        std::fs::write(
            &src,
            format!("#include <unistd.h>\nint main(void){{ {body} }}\n"),
        )
        .unwrap();
        let out = dir.path().join(name);
        let ok = Command::new("aarch64-linux-gnu-gcc")
            .arg("-static")
            .arg("-O0")
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .status()
            .unwrap();
        assert!(ok.success());
        out.to_str().unwrap().to_string()
    };
    let blocked = build("blocked", "write(2, \"waiting\\n\", 8); pause(); return 0;");
    let spinning = build(
        "spinning",
        "volatile unsigned long n = 0; for (;;) n++; return 0;",
    );
    let bin = common::binfmtd_bin();
    let b = bin.to_str().unwrap();
    let run = |prog: &str| {
        let o = sandbox_for_run(&bin)
            .args([
                "--platform",
                "linux/arm64",
                "--",
                b,
                "doctor",
                "--json",
                prog,
                "--run",
                "--timeout",
                "2",
            ])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let v = run(&blocked);
    assert_eq!(v["run"]["status"]["status"], "hang-blocked", "{v}");
    assert_eq!(v["run"]["stderr_tail"][0], "waiting");
    // qemu's own log of the guest's last calls, taken from a QEMU_STRACE=1 re-run.
    let guest = v["run"]["guest_syscalls"].as_array().unwrap();
    assert!(guest.iter().any(|l| l.as_str().unwrap().contains("pause") || l.as_str().unwrap().contains("write")), "{guest:?}");
    let v = run(&spinning);
    assert_eq!(v["run"]["status"]["status"], "hang-spinning", "{v}");
}

/// `doctor --run` started by root runs the program as nobody (65534, no supplementary
/// groups), refuses where no unprivileged uid exists, and keeps an unprivileged namespace's
/// uid 0; the report says which.
#[test]
fn run_never_runs_the_program_as_root() {
    if !nix::unistd::geteuid().is_root() || !common::require_tool("setpriv") {
        eprintln!("SKIPPED: needs root (the case under test) and setpriv");
        return;
    }
    let print_ids = [
        "/bin/sh",
        "--run",
        "--",
        "-c",
        "id -u >&2; id -g >&2; id -G >&2",
    ];
    let o = doctor(&[&["--json"][..], &print_ids[..]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["run"]["stderr_tail"],
        serde_json::json!(["65534", "65534", "65534"]),
        "{v}"
    );
    assert_eq!(v["run"]["identity"]["kind"], "dropped-root");
    assert_eq!(v["run"]["identity"]["uid"], 65534);
    let o = doctor(&print_ids);
    assert!(
        text(&o).contains("ran as: nobody (65534:65534"),
        "{}",
        text(&o)
    );
    // A setuid-root copy of id cannot give root back (no_new_privs).
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("id");
    std::fs::copy("/usr/bin/id", &id).unwrap();
    std::fs::set_permissions(
        &id,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o4755),
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path(),
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    let script = format!("{} -u >&2", id.display());
    let o = doctor(&["--json", "/bin/sh", "--run", "--", "-c", &script]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["run"]["stderr_tail"], serde_json::json!(["65534"]), "{v}");

    let bin = common::binfmtd_bin();
    let run_in = |prefix: &[&str]| {
        let o = Command::new(prefix[0])
            .args(&prefix[1..])
            .arg(&bin)
            .args(["doctor", "--json"])
            .args(print_ids)
            .env("BINFMTD_BINFMT_MISC", "/nonexistent-binfmt-misc")
            .output()
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
        (o.status.code(), v)
    };
    // Root in a namespace that maps only uid 0 (to the host's root): nothing to switch to.
    let (code, v) = run_in(&["unshare", "--user", "--map-root-user"]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["run"]["identity"]["kind"], "refused", "{v}");
    assert_eq!(v["run"]["status"]["status"], "exec-failed", "{v}");
    assert_eq!(v["run"]["stderr_tail"], serde_json::json!([]), "{v}");
    // uid 0 of a namespace that is nobody outside is not the host's root: kept.
    let (code, v) = run_in(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "unshare",
        "--user",
        "--map-root-user",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["run"]["identity"]["kind"], "namespace-root", "{v}");
    assert_eq!(v["run"]["stderr_tail"][0], "0", "{v}");
}

/// Replaces every occurrence of `from` in `bytes` with `to` (same length).
fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    n
}

/// A hostile root's file name, PT_INTERP and DT_NEEDED with ESC sequences and newlines reach
/// doctor's text output escaped, never raw; JSON keeps the exact strings.
#[test]
fn text_output_escapes_control_characters_from_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let name = "evil\x1b[31mRED\nFORGED-LINE";
    std::fs::write(dir.join(name), "no shebang here\n").unwrap();
    let r = root.path().to_str().unwrap();
    let inner = format!("/bin/{name}");
    let mut cases = vec![inner.clone()];
    if common::require_tool("aarch64-linux-gnu-gcc") {
        let mut elf = std::fs::read(common::cross_bins().join("hello-aarch64-dynamic")).unwrap();
        assert!(patch(&mut elf, b"ld-linux", b"\x1b[2J\nFOR") > 0);
        assert!(patch(&mut elf, b"libc.so.6", b"\x1b]0;\nFORG") > 0);
        let p = dir.join("hello");
        std::fs::write(&p, elf).unwrap();
        std::fs::set_permissions(
            &p,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
        )
        .unwrap();
        cases.push("/bin/hello".into());
    }
    for path in &cases {
        let o = doctor(&["--root", r, path]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(!out.contains('\x1b'), "raw ESC in {out:?}");
        assert!(
            !out.lines().any(|l| l.starts_with("FOR")),
            "a file-derived newline started a line: {out:?}"
        );
        assert!(out.contains("\\x1b"), "{out}");
        assert!(out.contains("\\n"), "{out}");
        let o = doctor(&["--json", "--root", r, path]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["subjects"][0]["path"], path.as_str());
    }
}
