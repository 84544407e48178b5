//! The CLI's D-Bus path: with a daemon on the (test) system bus, `binfmtd install` goes over
//! D-Bus; polkit-less unprivileged callers are refused; `status` says which way changes go.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::process::{Command, Output};
use support::{require_root, text, Bus, Daemon};

/// Runs the real binary against the test bus, as root or as `uid`. Root runs happen inside
/// a private binfmt_misc instance, so even a wrong fallback to acting directly could never
/// reach the host's binfmt_misc; `--require-daemon` makes such a fallback an error anyway.
fn cli(bus: &Bus, uid: Option<u32>, args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_binfmtd");
    let mut cmd = match uid {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={u}"),
                format!("--regid={u}"),
                "--clear-groups".into(),
                "--".into(),
                bin.into(),
            ]);
            c
        }
        None => {
            let mut c = Command::new("unshare");
            c.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
                .arg("mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && exec \"$0\" \"$@\"")
                .arg(bin);
            c
        }
    };
    cmd.args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .env_remove("BINFMTD_NO_DAEMON")
        .env("HOME", "/");
    cmd.output().unwrap()
}

#[test]
fn cli_changes_go_through_the_daemon() {
    if !require_root() {
        return;
    }
    let bus = Bus::start("");
    let daemon = Daemon::start(&bus, &bus.dir.path().join("d"));

    // Root: install goes over D-Bus and lands in the daemon's private instance.
    let out = cli(
        &bus,
        None,
        &["install", "riscv64", "--require-daemon", "--json"],
    );
    assert!(out.status.success(), "{}\n{}", text(&out), daemon.log());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "binfmtd.remote/v1");
    assert_eq!(v["via"], "daemon");
    assert_eq!(v["ok"], true);
    assert!(
        daemon.kernel_state().contains("== qemu-riscv64"),
        "{}",
        daemon.kernel_state()
    );

    // status says changes go through the daemon, and which version answered.
    let out = cli(&bus, None, &["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["route"]["via"], "daemon", "{v}");
    assert_eq!(v["route"]["daemon_version"], env!("CARGO_PKG_VERSION"));
    let out = cli(&bus, None, &["status", "--no-daemon", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["route"]["via"], "direct");

    // An unprivileged caller without polkit is refused (exit 4) and the kernel is unchanged.
    let before = daemon.kernel_state();
    for args in [
        &["install", "linux/arm64", "--require-daemon"][..],
        &["uninstall", "riscv64", "--require-daemon"][..],
        &["disable", "riscv64", "--require-daemon"][..],
    ] {
        let out = cli(&bus, Some(65534), args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("org.binfmtd1.manage"), "{err}");
    }
    assert_eq!(daemon.kernel_state(), before);

    // Root uninstalls over D-Bus.
    let out = cli(&bus, None, &["uninstall", "riscv64", "--require-daemon"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("via the binfmtd daemon"));
    assert!(!daemon.kernel_state().contains("== qemu-riscv64"));
}

#[test]
fn require_daemon_without_a_daemon_fails_clearly() {
    let bus = Bus::start("");
    let out = cli(&bus, None, &["install", "riscv64", "--require-daemon"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("org.binfmtd1 is not on the system bus"));
    let out = cli(
        &bus,
        None,
        &["install", "riscv64", "--require-daemon", "--no-daemon"],
    );
    assert_eq!(out.status.code(), Some(2));
}
