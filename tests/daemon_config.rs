//! The daemon's config goes through the same verified transaction as a request: a handler
//! that cannot be proven is not registered; an unknown key stops the daemon with exit 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use support::*;

const M: [&str; 3] = ["org.binfmtd1", "/org/binfmtd1", "org.binfmtd1.Manager"];

#[test]
fn config_installs_are_verified_and_unproven_ones_are_not_kept() {
    if !require_root() {
        return;
    }
    let bus = Bus::start("");
    let root = bus.dir.path().join("d");
    std::fs::create_dir_all(root.join("etc/config.d")).unwrap();
    // Without F the interpreter is not reachable from the empty chroot the probe runs in:
    // registered, the handler would not work in a container, so it must not stay.
    std::fs::write(
        root.join("etc/config.d/10-riscv.toml"),
        "platforms = [\"linux/riscv64\"]\nflags = \"\"\n",
    )
    .unwrap();
    let daemon = Daemon::start(&bus, &root);
    // The failed attempt at start registers and removes the entry; those writes are a drift
    // event, which must not start the same failing attempt again (and again).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let attempts = daemon.log().matches("cannot keep").count();
    assert_eq!(
        attempts,
        1,
        "the failing platform is retried on its own writes:\n{}",
        daemon.log()
    );
    let out = bus.busctl(
        None,
        &["--json=short", "call", M[0], M[1], M[2], "Reconcile"],
    );
    let reply = text(&out);
    assert!(out.status.success(), "{reply}\n{}", daemon.log());
    assert!(
        reply.contains("failed") && reply.contains("probe"),
        "{reply}"
    );
    let state = daemon.kernel_state();
    assert!(
        !state.contains("qemu-riscv64"),
        "an unproven entry stayed:\n{state}"
    );
    let out = bus.busctl(
        None,
        &["get-property", M[0], M[1], M[2], "SupportedPlatforms"],
    );
    assert!(!text(&out).contains("riscv64"), "{}", text(&out));
    // With F it is proven, registered, and listed.
    std::fs::write(
        root.join("etc/config.d/10-riscv.toml"),
        "platforms = [\"linux/riscv64\"]\nflags = \"F\"\n",
    )
    .unwrap();
    let out = bus.busctl(
        None,
        &["--json=short", "call", M[0], M[1], M[2], "Reconcile"],
    );
    assert!(
        text(&out).contains("installed"),
        "{}\n{}",
        text(&out),
        daemon.log()
    );
    let out = bus.busctl(
        None,
        &["get-property", M[0], M[1], M[2], "SupportedPlatforms"],
    );
    assert!(text(&out).contains("linux/riscv64"), "{}", text(&out));
}

#[test]
fn an_unknown_config_key_stops_the_daemon_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc/config.d")).unwrap();
    std::fs::write(
        dir.path().join("etc/config.d/50-typo.toml"),
        "platfroms = [\"linux/arm64\"]\n",
    )
    .unwrap();
    for extra in [
        &["--no-bus"][..],
        &["--bus-address", "unix:path=/nonexistent"][..],
    ] {
        let out = Command::new(daemon_exe())
            .arg("daemon")
            .args(extra)
            .env("BINFMTD_CONFIG_DIR", dir.path().join("etc"))
            .env("BINFMTD_STATE_DIR", dir.path().join("state"))
            // Never the host's instance: a directory that is not binfmt_misc at all.
            .env("BINFMTD_BINFMT_MISC", dir.path())
            .output()
            .unwrap();
        let err = text(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("50-typo.toml") && err.contains("platfroms"),
            "{err}"
        );
    }
}
