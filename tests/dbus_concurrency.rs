//! 50 concurrent clients (separate busctl processes) reading and writing: no errors, and the
//! final state is consistent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

const M: [&str; 3] = ["org.binfmtd1", "/org/binfmtd1", "org.binfmtd1.Manager"];

#[test]
fn fifty_concurrent_readers_and_writers() {
    if !require_root() {
        return;
    }
    let bus = Bus::start("");
    let daemon = Daemon::start(&bus, &bus.dir.path().join("d"));
    let install = |p: &str| -> Vec<String> {
        [
            "call", M[0], M[1], M[2], "Install", "asa{sv}b", "1", p, "0", "false",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let out = bus.busctl(
        None,
        &install("linux/arm64")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", text(&out));

    let mut jobs: Vec<Vec<String>> = Vec::new();
    for i in 0..50 {
        jobs.push(match i % 5 {
            0 | 1 => ["get-property", M[0], M[1], M[2], "Handlers"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            2 => install("linux/arm64"),
            3 => install("linux/riscv64"),
            _ => [
                "call",
                M[0],
                M[1],
                M[2],
                "Enable",
                "asb",
                "1",
                "linux/arm64",
                "false",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        });
    }
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|args| {
                s.spawn(|| bus.busctl(None, &args.iter().map(String::as_str).collect::<Vec<_>>()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (args, out) in jobs.iter().zip(&results) {
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            text(out),
            daemon.log()
        );
    }

    let out = bus.busctl(
        None,
        &["--json=short", "get-property", M[0], M[1], M[2], "Handlers"],
    );
    let handlers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<String> = handlers["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["qemu-aarch64", "qemu-riscv64"],
        "exactly one entry each"
    );
    let kernel = daemon.kernel_state();
    assert_eq!(kernel.matches("== qemu-").count(), 2, "{kernel}");
    let desired = std::fs::read_to_string(daemon.root.join("state/desired.toml")).unwrap();
    assert!(
        // Recorded under canonical handler names, whatever platform words the clients used.
        desired.contains("installed.qemu-aarch64") && desired.contains("installed.qemu-riscv64"),
        "{desired}"
    );
}
