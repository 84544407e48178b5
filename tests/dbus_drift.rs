//! Drift repair and crash convergence, in a private binfmt_misc instance on a real bus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};
use support::*;

const M: [&str; 3] = ["org.binfmtd1", "/org/binfmtd1", "org.binfmtd1.Manager"];

fn has(daemon: &Daemon, name: &str) -> bool {
    daemon
        .sh(&format!("test -e /proc/sys/fs/binfmt_misc/{name}"))
        .status
        .success()
}

fn entry(daemon: &Daemon, name: &str) -> String {
    String::from_utf8_lossy(
        &daemon
            .sh(&format!("cat /proc/sys/fs/binfmt_misc/{name}"))
            .stdout,
    )
    .into_owned()
}

#[test]
fn owned_entries_come_back_after_flush_and_systemd_binfmt_but_foreign_ones_are_left_alone() {
    if !require_root() {
        return;
    }
    let bus = Bus::start("");
    let daemon = Daemon::start(&bus, &bus.dir.path().join("d"));
    install(&bus, &daemon, &["linux/arm64"]);
    let ours = entry(&daemon, "qemu-aarch64");
    assert!(ours.starts_with("enabled"), "{ours}");

    // 1. Another tool flushes everything.
    let out = daemon.sh("echo -1 > /proc/sys/fs/binfmt_misc/status");
    assert!(out.status.success(), "{}", text(&out));
    let took = daemon.wait_for(Duration::from_secs(5), || has(&daemon, "qemu-aarch64"));
    assert!(
        took.is_some(),
        "not restored within 5 s after `echo -1 > status`; log:\n{}",
        daemon.log()
    );
    eprintln!("restored after flush in {:?}", took.unwrap_or_default());
    assert_eq!(entry(&daemon, "qemu-aarch64"), ours);

    // A foreign entry, disabled by its owner, is neither re-enabled nor removed.
    let out = daemon.sh(r"echo ':other-y:M::\x7fQQ::/bin/true:' > /proc/sys/fs/binfmt_misc/register && echo 0 > /proc/sys/fs/binfmt_misc/other-y");
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        entry(&daemon, "other-y").starts_with("disabled"),
        "{}",
        entry(&daemon, "other-y")
    );

    // 2. The real systemd-binfmt runs (flush, then apply binfmt.d) with a private binfmt.d
    //    holding another tool's rule.
    let out = daemon.sh(r"set -e
        for d in /etc/binfmt.d /run/binfmt.d /usr/local/lib/binfmt.d /usr/lib/binfmt.d; do
            if [ -d $d ]; then mount -t tmpfs tmpfs $d; fi
        done
        echo ':foreign-x:M::\x7fZZ::/bin/true:F' > /etc/binfmt.d/foreign.conf
        /usr/lib/systemd/systemd-binfmt");
    assert!(out.status.success(), "systemd-binfmt: {}", text(&out));
    let start = Instant::now();
    let took = daemon.wait_for(Duration::from_secs(5), || has(&daemon, "qemu-aarch64"));
    assert!(
        took.is_some(),
        "not restored within 5 s after systemd-binfmt; log:\n{}",
        daemon.log()
    );
    eprintln!("restored after systemd-binfmt in {:?}", start.elapsed());
    assert_eq!(entry(&daemon, "qemu-aarch64"), ours);
    let foreign = entry(&daemon, "foreign-x");
    assert!(
        foreign.starts_with("enabled") && foreign.contains("flags: F"),
        "{foreign}"
    );
    assert!(
        !has(&daemon, "other-y"),
        "the daemon must not restore entries it does not own"
    );
    let log = daemon.log();
    assert!(log.contains("repaired"), "each repair is logged:\n{log}");

    // 3. Unmount and remount: the instance is emptied (we held its only mount) and refilled.
    let out = daemon.sh("umount /proc/sys/fs/binfmt_misc && mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && ls /proc/sys/fs/binfmt_misc");
    assert!(out.status.success(), "{}", text(&out));
    let took = daemon.wait_for(Duration::from_secs(5), || has(&daemon, "qemu-aarch64"));
    assert!(
        took.is_some(),
        "not restored within 5 s after remount; log:\n{}",
        daemon.log()
    );
}

#[test]
fn kill_9_mid_install_then_restart_converges() {
    if !require_root() {
        return;
    }
    let bus = Bus::start("");
    let mut daemon = Daemon::start(&bus, &bus.dir.path().join("d"));
    let platforms = [
        "linux/arm64",
        "linux/riscv64",
        "linux/s390x",
        "linux/ppc64le",
        "linux/mips64le",
        "linux/arm/v7",
        "linux/mips64",
        "linux/loong64",
    ];
    let n = platforms.len().to_string();
    let mut argv: Vec<String> = [
        "busctl",
        &format!("--address={}", bus.address),
        "call",
        M[0],
        M[1],
        M[2],
        "Install",
        "asa{sv}b",
        &n,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(platforms.iter().map(|s| s.to_string()));
    argv.extend(["0".into(), "false".into()]);
    let mut client = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let count = |d: &Daemon| {
        let out = d.sh("ls /proc/sys/fs/binfmt_misc | grep -c qemu- || true");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<usize>()
            .unwrap_or(0)
    };
    assert!(
        daemon
            .wait_for(Duration::from_secs(30), || count(&daemon) >= 1)
            .is_some(),
        "install never started:\n{}",
        daemon.log()
    );
    daemon.kill9();
    let at_kill = count(&daemon);
    eprintln!(
        "killed with {at_kill} of {} entries registered",
        platforms.len()
    );
    let _ = client.wait();

    daemon.spawn_daemon();
    // Converged: every requested platform is registered exactly once, owned by binfmtd,
    // and a Reconcile finds nothing to do.
    let out = bus.busctl(None, &["call", M[0], M[1], M[2], "Reconcile"]);
    assert!(out.status.success(), "{}\n{}", text(&out), daemon.log());
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !report.contains("\"installed\"") && !report.contains("\"failed\""),
        "not converged at start: {report}"
    );
    let out = bus.busctl(
        None,
        &["--json=short", "get-property", M[0], M[1], M[2], "Handlers"],
    );
    let handlers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = handlers["data"].as_array().unwrap().clone();
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "duplicate entries: {names:?}");
    assert_eq!(
        names.len(),
        platforms.len(),
        "all requested platforms registered: {names:?}"
    );
    assert!(rows.iter().all(|r| r[5] == "binfmtd"), "{rows:?}");
}

#[test]
fn disabled_stays_disabled_and_uninstalled_stays_gone() {
    if !require_root() {
        return;
    }
    let bus = Bus::start("");
    let daemon = Daemon::start(&bus, &bus.dir.path().join("d"));
    install(&bus, &daemon, &["linux/arm64", "linux/riscv64"]);
    let call = |method: &str, sig: &str, extra: &[&str]| {
        let mut args = vec!["call", M[0], M[1], M[2], method, sig, "1"];
        args.extend_from_slice(extra);
        let out = bus.busctl(None, &args);
        assert!(
            out.status.success(),
            "{method}: {}\n{}",
            text(&out),
            daemon.log()
        );
    };
    call("Disable", "asb", &["linux/arm64", "false"]);
    assert!(entry(&daemon, "qemu-aarch64").starts_with("disabled"));
    call("Uninstall", "asa{sv}b", &["linux/riscv64", "0", "false"]);
    assert!(!has(&daemon, "qemu-riscv64"));

    // Someone re-enables the disabled entry: the daemon puts it back to disabled.
    assert!(daemon
        .sh("echo 1 > /proc/sys/fs/binfmt_misc/qemu-aarch64")
        .status
        .success());
    let took = daemon.wait_for(Duration::from_secs(5), || {
        entry(&daemon, "qemu-aarch64").starts_with("disabled")
    });
    assert!(
        took.is_some(),
        "re-enabled entry not disabled again:\n{}",
        daemon.log()
    );

    // A flush brings back the disabled entry (disabled), not the uninstalled one.
    assert!(daemon
        .sh("echo -1 > /proc/sys/fs/binfmt_misc/status")
        .status
        .success());
    let took = daemon.wait_for(Duration::from_secs(5), || has(&daemon, "qemu-aarch64"));
    assert!(took.is_some(), "not restored:\n{}", daemon.log());
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        entry(&daemon, "qemu-aarch64").starts_with("disabled"),
        "{}",
        entry(&daemon, "qemu-aarch64")
    );
    assert!(
        !has(&daemon, "qemu-riscv64"),
        "uninstalled platform came back"
    );

    // And the daemon is quiet afterwards: no repair loop between enable and disable.
    let repairs = |d: &Daemon| d.log().matches("repaired").count();
    let settled = repairs(&daemon);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        repairs(&daemon),
        settled,
        "repairs keep happening:\n{}",
        daemon.log()
    );
}
