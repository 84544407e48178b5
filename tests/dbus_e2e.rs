//! End-to-end: the daemon on a real private bus, real clients, root and an unprivileged user.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use support::*;

/// An aarch64 ELF shipped by libc6-dev-arm64-cross (installed for the project's fixtures).
const AARCH64_ELF: &str = "/usr/aarch64-linux-gnu/lib/libc.so.6";

const MANAGER: [&str; 3] = ["org.binfmtd1", "/org/binfmtd1", "org.binfmtd1.Manager"];

#[test]
fn root_installs_and_unprivileged_is_denied_but_may_read() {
    if !require_root() {
        return;
    }
    let bus = Bus::start("");
    let root = bus.dir.path().join("d");
    let daemon = Daemon::start(&bus, &root);
    rt().block_on(async {
        use futures_util::StreamExt;
        let conn = bus.connect().await;
        let proxy = binfmtd::dbus::proxy::ManagerProxy::new(&conn)
            .await
            .unwrap();
        let mut signals = proxy.receive_handlers_updated().await.unwrap();
        let mut changes = proxy.receive_handlers_changed().await;
        // Root installs over D-Bus with busctl.
        install(&bus, &daemon, &["linux/arm64"]);
        let state = daemon.kernel_state();
        assert!(state.contains("== qemu-aarch64"), "{state}");
        let signal = tokio::time::timeout(Duration::from_secs(5), signals.next())
            .await
            .expect("HandlersChanged")
            .unwrap();
        let handlers = signal.args().unwrap().handlers;
        assert!(
            handlers
                .iter()
                .any(|h| h.name == "qemu-aarch64" && h.owner == "binfmtd" && h.wins),
            "{handlers:?}"
        );
        // The property stream yields the initial value, then the change.
        let mut seen = false;
        for _ in 0..2 {
            let Ok(Some(c)) = tokio::time::timeout(Duration::from_secs(5), changes.next()).await
            else {
                break;
            };
            if c.get()
                .await
                .unwrap()
                .iter()
                .any(|h| h.name == "qemu-aarch64")
            {
                seen = true;
                break;
            }
        }
        assert!(seen, "PropertiesChanged for Handlers did not arrive");
    });

    // Nobody gets AccessDenied from every mutating method, and nothing changes.
    let before = daemon.kernel_state();
    for (method, args) in [
        ("Install", vec!["['linux/riscv64']", "{}", "false"]),
        ("Uninstall", vec!["['linux/arm64']", "{}", "false"]),
        ("Enable", vec!["['linux/arm64']", "false"]),
        ("Disable", vec!["['linux/arm64']", "true"]),
    ] {
        let out = bus.gdbus_call(Some(NOBODY), method, &args);
        assert!(
            !out.status.success(),
            "{method} as nobody succeeded: {}",
            text(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("org.binfmtd1.Error.AccessDenied"),
            "{method}: {}",
            text(&out)
        );
    }
    assert_eq!(
        daemon.kernel_state(),
        before,
        "kernel state changed after denied calls"
    );

    // ...but may read every property.
    for property in [
        "Handlers",
        "HostArchitecture",
        "NativePlatforms",
        "SupportedPlatforms",
        "BinfmtMiscMounted",
        "GlobalStatus",
        "Version",
    ] {
        let out = bus.busctl(
            Some(NOBODY),
            &["get-property", MANAGER[0], MANAGER[1], MANAGER[2], property],
        );
        assert!(out.status.success(), "{property}: {}", text(&out));
        if property == "Handlers" {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("qemu-aarch64"),
                "{}",
                text(&out)
            );
        }
        if property == "GlobalStatus" {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("enabled"),
                "{}",
                text(&out)
            );
        }
    }
}

#[test]
fn doctor_takes_an_fd_and_refuses_paths() {
    if !require_root() {
        return;
    }
    let bus = Bus::start("");
    let _daemon = Daemon::start(&bus, &bus.dir.path().join("d"));
    rt().block_on(async {
        use std::collections::HashMap;
        use std::os::fd::AsFd;
        let conn = bus.connect().await;
        let proxy = binfmtd::dbus::proxy::ManagerProxy::new(&conn)
            .await
            .unwrap();
        let name = |e: zbus::Error| match e {
            zbus::Error::MethodError(name, _, _) => name.to_string(),
            other => format!("{other:?}"),
        };
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        // A path in the options is refused: the daemon never opens paths for callers.
        let mut opts = HashMap::new();
        opts.insert("path", zbus::Variant::new("/etc/shadow"));
        let err = proxy.doctor(file.as_fd().into(), opts).await.unwrap_err();
        assert_eq!(name(err), "org.binfmtd1.Error.InvalidArgument");
        // A descriptor that is not a regular file is refused.
        let dir = std::fs::File::open("/").unwrap();
        let err = proxy
            .doctor(dir.as_fd().into(), HashMap::new())
            .await
            .unwrap_err();
        assert_eq!(name(err), "org.binfmtd1.Error.InvalidArgument");
        // A regular file the caller opened is diagnosed, whoever may or may not read its path.
        let out = bus.busctl(
            None,
            &[
                "call",
                MANAGER[0],
                MANAGER[1],
                MANAGER[2],
                "Install",
                "asa{sv}b",
                "1",
                "linux/arm64",
                "0",
                "false",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        let foreign = std::fs::File::open(AARCH64_ELF).unwrap();
        let mut opts = HashMap::new();
        opts.insert("name", zbus::Variant::new("libc.so.6"));
        let json = proxy.doctor(foreign.as_fd().into(), opts).await.unwrap();
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
        assert!(
            report["schema"]
                .as_str()
                .unwrap()
                .starts_with("binfmtd.doctor"),
            "{json}"
        );
        assert!(
            json.contains("libc.so.6") && json.contains("qemu-aarch64"),
            "{json}"
        );
    });
}
