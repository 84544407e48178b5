//! End-to-end tests of install/uninstall/status/sandbox through the real binary, each in a
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! private binfmt_misc instance (`binfmtd sandbox --empty`), never the host's.

mod common;

use common::env::{docs, handler, stdout, Env};

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn install_all_then_foreign_binaries_run() {
    let bins = common::cross_bins();
    let env = Env::new();
    let script = format!(
        "$BIN install all --json; echo ===; {b}/hello-aarch64-static; {b}/hello-riscv64-static; $BIN status --json",
        b = bins.display()
    );
    let out = env.sandbox_sh(&script);
    assert!(out.status.success(), "install all failed");
    let text = stdout(&out);
    assert!(text.contains("hello from aarch64"), "{text}");
    assert!(text.contains("hello from riscv64"), "{text}");
    let d = docs(&out);
    let install = &d[0];
    assert_eq!(install["ok"], true);
    for h in [
        "qemu-aarch64",
        "qemu-riscv64",
        "qemu-arm",
        "qemu-s390x",
        "qemu-ppc64le",
    ] {
        let h = handler(install, h);
        assert_eq!(h["action"], "register", "{h}");
        assert_eq!(h["verify"]["read_back"], true, "{h}");
        assert_eq!(h["verify"]["probe"]["result"], "passed", "{h}");
        assert_eq!(h["verify"]["chrooted"], true, "{h}");
    }
    assert_eq!(handler(install, "qemu-x86_64")["action"], "skip_native");
    // Status sees them all as binfmtd's, each winning for its platform.
    let status: Value =
        serde_json::from_str(text.rsplit("hello from riscv64\n").next().unwrap()).unwrap();
    let entries = status["entries"].as_array().unwrap();
    let a64 = entries
        .iter()
        .find(|e| e["name"] == "qemu-aarch64")
        .unwrap();
    assert_eq!(a64["owner"], "binfmtd");
    assert_eq!(a64["wins"], true);
    assert_eq!(a64["platform"], "linux/arm64");
    assert_eq!(a64["flags"], "F");
}

#[test]
fn install_is_idempotent_and_uninstall_removes_only_ours() {
    let env = Env::new();
    // A python3.11-style entry and Debian's own qemu-aarch64 line, registered by "someone else".
    let script = r#"
R=/proc/sys/fs/binfmt_misc/register
printf ':python3.11:M::\xa7\x0d\x0d\x0a::/usr/bin/python3.11:' > $R
printf ':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF' > $R
cat /proc/sys/fs/binfmt_misc/python3.11 /proc/sys/fs/binfmt_misc/qemu-aarch64 > $T/before
$BIN install all --json; echo ===
$BIN install all --json --no-verify; echo ===
$BIN uninstall all --json; echo ===
cat /proc/sys/fs/binfmt_misc/python3.11 /proc/sys/fs/binfmt_misc/qemu-aarch64 > $T/after
ls /proc/sys/fs/binfmt_misc
"#;
    let out = env.sandbox_sh(script);
    assert!(out.status.success());
    let d = docs(&out);
    let (first, second, uninstall) = (&d[0], &d[1], &d[2]);
    let a64 = handler(first, "qemu-aarch64");
    assert_eq!(a64["action"], "skip_foreign");
    assert_eq!(a64["provider"], "qemu-aarch64");
    assert_eq!(handler(first, "qemu-riscv64")["action"], "register");
    for h in second["handlers"].as_array().unwrap() {
        assert!(
            !matches!(h["action"].as_str(), Some("register" | "replace")),
            "second install changed {h}"
        );
    }
    assert_eq!(handler(second, "qemu-riscv64")["action"], "keep");
    assert_eq!(handler(second, "qemu-riscv64")["owned"], true);
    let removed: Vec<&str> = uninstall["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(removed.contains(&"qemu-riscv64"));
    assert!(!removed.contains(&"qemu-aarch64") && !removed.contains(&"python3.11"));
    assert_eq!(
        std::fs::read(env.path("before")).unwrap(),
        std::fs::read(env.path("after")).unwrap()
    );
    let listing = stdout(&out);
    let tail = listing.rsplit("===").next().unwrap();
    assert!(!tail.contains("qemu-riscv64"), "{tail}");
    assert!(tail.contains("python3.11") && tail.contains("qemu-aarch64"));
}

#[test]
fn force_replaces_foreign_and_enable_disable_work() {
    let env = Env::new();
    let script = r#"
printf ':aarch64-other:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' > /proc/sys/fs/binfmt_misc/register
$BIN install linux/arm64 --json; echo ===
$BIN disable arm64 --json && exit 9 || true; echo ===
$BIN install linux/arm64 --no-verify > /dev/null && exit 9 || echo "noverify-exit=$?"
$BIN install linux/arm64 --force --json; echo ===
$BIN disable arm64 --json; echo ===
head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64
$BIN enable linux/arm64 --json; echo ===
head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64
test ! -e /proc/sys/fs/binfmt_misc/aarch64-other
"#;
    let out = env.sandbox_sh(script);
    assert!(out.status.success());
    let text = stdout(&out);
    let d = docs(&out);
    // A working foreign provider is left alone, and its probe proves the platform runs.
    let a64 = handler(&d[0], "qemu-aarch64");
    assert_eq!(a64["action"], "skip_foreign");
    assert_eq!(a64["provider"], "aarch64-other");
    assert_eq!(a64["verify"]["probe"]["result"], "passed");
    assert_eq!(d[0]["ok"], true);
    // Unverified (--no-verify), the foreign entry does not count as meeting the request.
    assert!(stdout(&out).contains("noverify-exit=1"), "{}", stdout(&out));
    assert_eq!(
        d[1]["entries"][0]["result"], "failed",
        "disable of a foreign entry needs --force"
    );
    assert_eq!(handler(&d[2], "qemu-aarch64")["action"], "replace");
    assert_eq!(d[3]["entries"][0]["action"], "disable");
    assert!(text.contains("disabled\n"));
    assert_eq!(d[4]["entries"][0]["action"], "enable");
}

#[test]
fn dry_run_prints_exact_lines_and_changes_nothing() {
    let env = Env::new();
    let out =
        env.sandbox_sh("$BIN install riscv64,s390x --dry-run; ls /proc/sys/fs/binfmt_misc | wc -l");
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains(r":qemu-riscv64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00:"), "{text}");
    assert!(text.contains(":qemu-s390x:M::"), "{text}");
    assert!(
        text.trim_end().ends_with('2'),
        "only register and status may exist: {text}"
    );
}

/// Debian's `aarch64-binfmt-P` refuses to run outside binfmt_misc; its version is its qemu's.
#[test]
fn p_wrapper_interpreter_shows_its_qemu_version() {
    let wrapper = "/usr/libexec/qemu-binfmt/aarch64-binfmt-P";
    if !Path::new(wrapper).exists() {
        assert!(
            !common::in_ci(),
            "{wrapper} missing: install qemu-user-static"
        );
        eprintln!("SKIPPED: {wrapper} missing: install qemu-user-static");
        return;
    }
    let env = Env::new();
    let out = env.sandbox_sh("$BIN install aarch64 --preserve-argv0 --json");
    assert!(out.status.success(), "install with P failed");
    let d = docs(&out);
    let h = handler(&d[0], "qemu-aarch64");
    assert_eq!(h["interpreter"]["path"], wrapper, "{h}");
    let version = h["interpreter"]["version"].as_str().unwrap_or_default();
    assert!(version.starts_with("qemu-aarch64 version "), "{h}");
    assert!(!version.contains("binfmt-misc"), "{h}");
    assert_eq!(h["verify"]["probe"]["result"], "passed", "{h}");
}

/// Versions are read on their own thread while the change proceeds (they are only shown),
/// and they still reach the report on a cold run and, through the fact cache, on the next.
#[test]
fn interpreter_versions_are_shown_cold_and_from_the_fact_cache() {
    let env = Env::new();
    let out = env.sandbox_sh(
        "$BIN install aarch64 --json && echo === && $BIN uninstall aarch64 >/dev/null && $BIN install aarch64 --json",
    );
    assert!(out.status.success(), "install, uninstall, install failed");
    let d = docs(&out);
    assert_eq!(d.len(), 2, "two install reports");
    for (run, doc) in ["cold", "cached"].iter().zip(&d) {
        let h = handler(doc, "qemu-aarch64");
        let version = h["interpreter"]["version"].as_str().unwrap_or_default();
        assert!(version.starts_with("qemu-aarch64 version "), "{run}: {h}");
    }
}

#[test]
fn persisted_files_reproduce_identical_entries_with_systemd_binfmt() {
    let sd = Path::new("/usr/lib/systemd/systemd-binfmt");
    let sd = if sd.exists() {
        sd.to_path_buf()
    } else {
        PathBuf::from("/lib/systemd/systemd-binfmt")
    };
    if !sd.exists() {
        assert!(
            !common::in_ci(),
            "systemd-binfmt is missing; install systemd"
        );
        eprintln!("skipped: no systemd-binfmt");
        return;
    }
    let env = Env::new();
    let script = format!(
        r#"
$BIN install riscv64,linux/arm64,s390x --persist --json > $T/install.json
cd /proc/sys/fs/binfmt_misc
for e in qemu-*; do cat $e > $T/before.$e; done
for e in qemu-*; do echo -1 > $e; done
test ! -e qemu-riscv64
{sd} $T/binfmt.d/*.conf
for e in qemu-*; do cat $e > $T/after.$e; done
ls $T/binfmt.d
$BIN uninstall all --json > /dev/null
ls $T/binfmt.d | wc -l
"#,
        sd = sd.display()
    );
    let out = env.sandbox_sh(&script);
    assert!(out.status.success());
    for e in ["qemu-riscv64", "qemu-aarch64", "qemu-s390x"] {
        let before = std::fs::read_to_string(env.path(&format!("before.{e}"))).unwrap();
        let after = std::fs::read_to_string(env.path(&format!("after.{e}"))).unwrap();
        assert_eq!(before, after, "{e} differs after systemd-binfmt");
    }
    let text = stdout(&out);
    assert!(text.contains("binfmtd-qemu-riscv64.conf"));
    assert!(
        text.trim_end().ends_with('0'),
        "uninstall must remove the binfmt.d files: {text}"
    );
}

#[test]
fn builder_scenario_in_a_debian_arm64_root() {
    let root = common::arm64_root();
    let env = Env::new();
    let out = env
        .cmd()
        .args(["sandbox", "--platform", "linux/arm64", "--root"])
        .arg(root)
        .args(["--", "/bin/sh", "-c", "uname -m"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out).trim(), "aarch64");
    // The same with a plain install and chroot, as a builder would do it.
    let out = env.sandbox_sh(&format!(
        "$BIN install linux/arm64 >/dev/null; chroot {} /bin/sh -c 'uname -m'",
        root.display()
    ));
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), "aarch64");
}

#[test]
fn bad_input_is_rejected_clearly_and_changes_nothing() {
    let env = Env::new();
    let table: &[(&[&str], i32, &str)] = &[
        (
            &["install", "linux/vax"],
            2,
            "unknown platform or handler \"linux/vax\"",
        ),
        (&["install", " , "], 2, "list is empty"),
        (
            &["install", "all", "--flags", "XZ"],
            2,
            "unknown binfmt_misc flag",
        ),
        (&["uninstall", "nonsense"], 2, "unknown platform"),
    ];
    for (args, code, msg) in table {
        // Point at a directory that is not binfmt_misc, so that no reordering of checks could
        // ever reach the host's instance.
        let out = env
            .cmd()
            .args(*args)
            .arg("--binfmt-misc")
            .arg(env.path("none"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(*code), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
    }
    // JSON errors are documents too.
    let out = env
        .cmd()
        .args(["install", "linux/vax", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "binfmtd.error/v1");
    assert_eq!(v["exit_code"], 2);
    // binfmt_misc unavailable: a directory that is not binfmt_misc, read-only status.
    let out = env
        .cmd()
        .args(["status", "--json", "--binfmt-misc"])
        .arg(env.path("none"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mounted"], false);
}

#[test]
fn unprivileged_install_names_the_missing_capability() {
    if !nix_is_root() {
        eprintln!("skipped: needs root to switch to an unprivileged user");
        return;
    }
    let env = Env::new();
    let target = env.path("not-binfmt");
    std::fs::create_dir_all(&target).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(common::binfmtd_bin())
        .args(["install", "riscv64", "--binfmt-misc"])
        .arg(&target)
        .env("BINFMTD_STATE_DIR", "/nonexistent-state")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
}

fn nix_is_root() -> bool {
    nix::unistd::getuid().is_root()
}

#[test]
fn missing_interpreter_kernel_refusal_and_corrupt_state() {
    let env = Env::new();
    // A drop-in pointing qemu-riscv64 at an interpreter that does not exist.
    env.dropin_interpreter("qemu-riscv64", "/nonexistent/qemu-riscv64");
    // qemu-s390x on a noexec mount: the kernel refuses to open it for the F flag.
    let noexec = format!("{}/noexec/qemu-s390x-static", env.dir.path().display());
    env.dropin_interpreter("qemu-s390x", &noexec);
    std::fs::create_dir_all(env.path("state")).unwrap();
    std::fs::write(env.path("state/state.json"), "{ corrupt").unwrap();
    let script = r#"
mkdir -p $T/noexec; mount -t tmpfs -o noexec tmpfs $T/noexec; cp /usr/bin/qemu-s390x-static $T/noexec/
$BIN install riscv64 --json && exit 9 || echo "exit=$?"; echo ===
$BIN install s390x --json && exit 9 || echo "exit=$?"; echo ===
$BIN install arm64 --json; echo ===
"#;
    let out = env.sandbox_sh(script);
    assert!(out.status.success());
    let d = docs(&out);
    let rv = handler(&d[0], "qemu-riscv64");
    assert_eq!(rv["result"], "failed");
    assert!(
        rv["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/qemu-riscv64"),
        "{rv}"
    );
    let s = handler(&d[1], "qemu-s390x");
    assert_eq!(s["result"], "failed");
    let e = s["error"].as_str().unwrap();
    assert!(
        e.contains("refused register line")
            && e.contains(":qemu-s390x:M::")
            && e.contains("EACCES"),
        "{e}"
    );
    // The corrupt state was reported (first run) and moved aside; installs carried on.
    assert!(d[0]["warnings"].to_string().contains("corrupt"), "{}", d[0]);
    assert!(env.path("state/state.json.corrupt").exists());
    assert_eq!(d[2]["ok"], true);
    let text = stdout(&out);
    assert!(
        text.contains("exit=1\n===\n") || text.matches("exit=1").count() == 2,
        "{text}"
    );
}

#[test]
fn host_reports_probed_native_isas() {
    let env = Env::new();
    let out = env.cmd().args(["host", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["native_method"], "probe", "{v}");
    let native: Vec<&str> = v["native"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let machine = nix::sys::utsname::uname().unwrap();
    if machine.machine() == "x86_64" {
        assert_eq!(v["machine"]["oci"], "linux/amd64");
        assert!(native.contains(&"x86_64"));
        assert!(
            !native.contains(&"aarch64") && !native.contains(&"riscv64"),
            "{native:?}"
        );
        assert!(v["x86_64_level"].as_u64().unwrap() >= 1);
    }
    assert!(v["page_size"].as_u64().unwrap() >= 4096);
    assert_eq!(v["kernel"]["private_instances"], true);
}

#[test]
fn platforms_lists_native_and_verified_emulated() {
    let env = Env::new();
    let out = env
        .cmd()
        .args([
            "sandbox",
            "--platform",
            "riscv64,linux/s390x",
            "--",
            common::binfmtd_bin().to_str().unwrap(),
            "platforms",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p: Vec<&str> = v["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        p.contains(&"linux/riscv64") && p.contains(&"linux/s390x"),
        "{p:?}"
    );
    assert!(
        !p.contains(&"linux/arm64"),
        "arm64 has no handler in this instance: {p:?}"
    );
    assert_eq!(v["broken"].as_array().unwrap().len(), 0);
}

#[test]
fn install_without_binfmt_misc_says_so() {
    let env = Env::new();
    // Inside a private instance, so that the mount attempt cannot reach the host's.
    let out =
        env.sandbox_sh("$BIN install riscv64 --binfmt-misc $T/missing-dir || echo \"exit=$?\"");
    let text = stdout(&out);
    assert!(text.contains("exit=3"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot mount binfmt_misc at") && err.contains("missing-dir"),
        "{err}"
    );
}

#[test]
fn uninstall_removes_binfmt_d_files_of_flushed_entries() {
    let env = Env::new();
    let out = env.sandbox_sh(
        "$BIN install riscv64 --persist --no-verify >/dev/null; echo -1 > /proc/sys/fs/binfmt_misc/status; $BIN uninstall all; echo files=$(ls $T/binfmt.d | wc -l)",
    );
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("files=0"), "{text}");
    assert!(text.contains("removed its binfmt.d file"), "{text}");
}

#[test]
fn without_user_namespaces_sandbox_says_so_and_host_falls_back() {
    // A user namespace whose own limit forbids further user namespaces: the same as a host
    // with unprivileged user namespaces disabled, from binfmtd's point of view.
    let bin = common::binfmtd_bin();
    let script = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces && {b} sandbox --empty -- true; echo rc=$?; {b} host --json",
        b = bin.display()
    );
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = stdout(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("rc=3"), "{text}");
    assert!(
        err.contains("cannot create a user namespace") && err.contains("max_user_namespaces"),
        "{err}"
    );
    let v: Value = serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    assert_eq!(v["native_method"], "probe-and-guess", "{v}");
    let native: Vec<&str> = v["native"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(!native.contains(&"aarch64"), "{native:?}");
    assert!(v["probe_error"]
        .as_str()
        .unwrap()
        .contains("private binfmt_misc instance"));
}
