//! `ListEmulated` on a real bus: root sees an emulated process in the daemon's instance;
//! an unprivileged caller sees only processes its own uid could read (none of root's); what
//! the daemon's confinement hides is counted and explained.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use serde_json::Value;
use support::*;

const M: [&str; 3] = ["org.binfmtd1", "/org/binfmtd1", "org.binfmtd1.Manager"];

/// Calls ListEmulated as `uid` and returns the decoded report.
fn list(bus: &Bus, uid: Option<u32>, daemon: &Daemon) -> Value {
    let out = bus.busctl(
        uid,
        &[
            "--json=short",
            "call",
            M[0],
            M[1],
            M[2],
            "ListEmulated",
            "a{sv}",
            "0",
        ],
    );
    assert!(out.status.success(), "{}\n{}", text(&out), daemon.log());
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_json::from_str(reply["data"][0].as_str().unwrap()).unwrap()
}

fn paths(report: &Value) -> Vec<String> {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["processes"].as_array().unwrap().iter())
        .filter_map(|p| p["guest"]["path"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn list_emulated_shows_each_caller_what_it_may_read() {
    if !require_root() || !common::require_tool("qemu-aarch64-static") {
        return;
    }
    let bus = Bus::start("");
    let root = bus.dir.path().join("d");
    let daemon = Daemon::start(&bus, &root);
    install(&bus, &daemon, &["linux/arm64"]);
    let bin = root.join("hang-aarch64");
    std::fs::copy(common::cross_bins().join("hang-aarch64"), &bin).unwrap();
    let started = daemon.sh(&format!(
        "'{}' pipe </dev/null >/dev/null 2>&1 & echo $!",
        bin.display()
    ));
    let pid = String::from_utf8_lossy(&started.stdout).trim().to_string();
    let shown = bin.display().to_string();
    // The daemon keeps only CAP_SYS_ADMIN and CAP_SYS_CHROOT, so the kernel lets it read
    // only processes no more privileged than itself: a root process with every capability
    // is either listed or counted as unreadable, with the hint that `binfmtd ps` as root
    // is the full view; never silently dropped.
    let mut root_view = Value::Null;
    for _ in 0..50 {
        root_view = list(&bus, None, &daemon);
        let hidden = root_view["unreadable"]["count"].as_u64().unwrap_or(0);
        if paths(&root_view).contains(&shown) || hidden > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let nobody = list(&bus, Some(65534), &daemon);
    let _ = daemon.sh(&format!("kill {pid}"));
    assert_eq!(root_view["schema"], "binfmtd.ps/v1", "{root_view}");
    if !paths(&root_view).contains(&shown) {
        let hint = root_view["unreadable"]["hint"].as_str().unwrap_or_default();
        assert!(hint.contains("binfmtd ps"), "{root_view}");
    }
    assert_eq!(nobody["schema"], "binfmtd.ps/v1");
    assert!(
        !paths(&nobody).contains(&shown),
        "nobody sees root's process: {nobody}"
    );
    // A bad option is refused by name.
    let out = bus.busctl(
        None,
        &[
            "call",
            M[0],
            M[1],
            M[2],
            "ListEmulated",
            "a{sv}",
            "1",
            "sample",
            "d",
            "99",
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("sample"), "{}", text(&out));
}
