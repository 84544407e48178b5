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

/// The daemon (over D-Bus) and direct CLI runs (`--no-daemon`, same state directory, same
/// instance) change the desired state at the same time: every request is kept, none lost
/// (both writers take the one state lock), and refused ones are not recorded.
#[test]
fn daemon_and_direct_cli_share_one_desired_state() {
    if !require_root() {
        return;
    }
    let bus = Bus::start("");
    let root = bus.dir.path().join("d");
    let daemon = Daemon::start(&bus, &root);
    let env = format!(
        "BINFMTD_STATE_DIR='{}' BINFMTD_CONFIG_DIR='{}' BINFMTD_BINFMT_D_DIR='{}'",
        root.join("state").display(),
        root.join("etc").display(),
        root.join("binfmt.d").display()
    );
    let bin = daemon_exe();
    let over_bus = ["linux/arm64", "linux/s390x", "linux/ppc64le"];
    let direct = ["linux/riscv64", "linux/mips64le", "linux/arm/v7"];
    std::thread::scope(|s| {
        for p in over_bus {
            let bus = &bus;
            s.spawn(move || {
                let out = bus.busctl(
                    None,
                    &[
                        "call", M[0], M[1], M[2], "Install", "asa{sv}b", "1", p, "0", "false",
                    ],
                );
                assert!(out.status.success(), "{p}: {}", text(&out));
            });
        }
        for p in direct {
            let (daemon, env, bin) = (&daemon, &env, &bin);
            s.spawn(move || {
                let out = daemon.sh(&format!(
                    "{env} '{}' --no-daemon install {p}",
                    bin.display()
                ));
                assert!(out.status.success(), "{p}: {}", text(&out));
            });
        }
    });
    let desired = std::fs::read_to_string(root.join("state/desired.toml")).unwrap();
    for handler in [
        "qemu-aarch64",
        "qemu-s390x",
        "qemu-ppc64le",
        "qemu-riscv64",
        "qemu-mips64el",
        "qemu-arm",
    ] {
        assert!(
            desired.contains(&format!("[installed.{handler}]")),
            "{handler} lost from the desired state:\n{desired}\n{}",
            daemon.log()
        );
    }
    // A refused change, directly and over the bus: another tool's entry is never disabled
    // and nothing is recorded for it.
    let out = daemon.sh(&format!(
        "printf ':qemu-sparc64:M::\\x7fQQQ::/bin/true:' > /proc/sys/fs/binfmt_misc/register && {env} '{}' --no-daemon disable qemu-sparc64; echo exit=$?",
        bin.display()
    ));
    assert!(text(&out).contains("exit=1"), "{}", text(&out));
    let out = bus.busctl(
        None,
        &[
            "call", M[0], M[1], M[2], "Disable", "asb", "1", "other", "false",
        ],
    );
    let after = std::fs::read_to_string(root.join("state/desired.toml")).unwrap();
    assert!(
        !after.contains("other"),
        "a refused change was recorded: {after}\n{}",
        text(&out)
    );
}
