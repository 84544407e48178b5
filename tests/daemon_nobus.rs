//! `binfmtd daemon --no-bus` keeps the configured platforms registered without any D-Bus,
//! as on container hosts and Kubernetes nodes: applied at start, restored after a flush.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn no_bus_daemon_applies_config_and_repairs_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/binfmtd.toml"),
        "platforms = [\"linux/riscv64\"]\n",
    )
    .unwrap();
    // Everything happens in a private binfmt_misc instance.
    let script = r#"
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
"$BIN" daemon --no-bus 2>"$T/daemon.log" &
pid=$!
wait_for() { i=0; while [ $i -lt 100 ]; do [ -e /proc/sys/fs/binfmt_misc/qemu-riscv64 ] && return 0; sleep 0.05; i=$((i+1)); done; return 1; }
wait_for && echo applied-at-start
echo -1 > /proc/sys/fs/binfmt_misc/status
wait_for && echo restored-after-flush
kill $pid; wait $pid
"#;
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
        .env("BIN", env!("CARGO_BIN_EXE_binfmtd"))
        .env("T", dir.path())
        .env("BINFMTD_CONFIG_DIR", dir.path().join("etc"))
        .env("BINFMTD_STATE_DIR", dir.path().join("state"))
        .env("BINFMTD_BINFMT_D_DIR", dir.path().join("binfmt.d"))
        .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    assert!(text.contains("applied-at-start"), "{text}\n{log}");
    assert!(text.contains("restored-after-flush"), "{text}\n{log}");
    assert!(log.contains("without D-Bus"), "{log}");
}
