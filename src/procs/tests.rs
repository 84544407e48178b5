//! Scans over recorded /proc data: finding, visibility, vanishing PIDs, grouping and verdicts.

use super::classify::ThreadSample;
use super::source::{Miss, RawProcess, Recorded};
use super::*;
use crate::catalog::Catalog;

const ID: &str = "3f4e8c1d2b7a9e0f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b";
const QEMU: &str = "/usr/bin/qemu-aarch64-static";

fn sample(tid: i32, state: char, ticks: u64, syscall: &str, start: f64) -> ThreadSample {
    ThreadSample {
        tid,
        state,
        cpu_ticks: ticks,
        syscall: Some(syscall.into()),
        wchan: Some("pipe_read".into()).filter(|_| syscall.starts_with("0 ")),
        exec_start_ms: Some(start),
    }
}

fn raw(comm: &str, argv: &[&str], cgroup: &str, uid: u32) -> RawProcess {
    RawProcess {
        comm: comm.into(),
        cmdline: argv.iter().map(|s| s.to_string()).collect(),
        auxv: Some(vec![(8, 0), (6, 4096)]),
        cgroup: format!("0::{cgroup}\n"),
        uids: [uid; 4],
        owner: uid,
    }
}

/// 10: blocked on a pipe in a docker container; 11: spinning; 12: qemu run by name;
/// 13: native; 14: unreadable; 15: gone after listing; 16: another user's, blocked.
fn recorded() -> Recorded {
    let mut r = Recorded {
        clock_ms: Some(100_000.0),
        ..Default::default()
    };
    let docker = format!("/system.slice/docker-{ID}.scope");
    let read = "0 0x3 0x7ffd 0x1000 0x0 0x0 0x0 0x7ffd 0x7f12";
    for (pid, exe) in [
        (10, QEMU),
        (11, QEMU),
        (12, QEMU),
        (13, "/usr/bin/bash"),
        (16, QEMU),
    ] {
        r.exes.insert(pid, Ok(exe.into()));
    }
    r.exes.insert(14, Err(Miss::Denied));
    r.exes.insert(15, Ok(QEMU.into()));
    r.processes
        .insert(10, Ok(raw("reader", &[QEMU, "/app/reader"], &docker, 1000)));
    r.processes.insert(
        11,
        Ok(raw("spin", &[QEMU, "/spin", "-n"], "/user.slice", 1000)),
    );
    r.processes
        .insert(12, Ok(raw("qemu-aarch64-st", &[QEMU, "./x"], "/", 0)));
    r.processes.insert(13, Ok(raw("bash", &["bash"], "/", 0)));
    r.processes
        .insert(16, Ok(raw("other", &[QEMU, "/other"], "/", 2000)));
    r.samples.insert(
        10,
        vec![
            vec![sample(10, 'S', 3, read, 58_000.0)],
            vec![sample(10, 'S', 3, read, 58_000.0)],
        ],
    );
    r.samples.insert(
        11,
        vec![
            vec![sample(11, 'R', 0, "running", 99_999.0)],
            vec![sample(11, 'R', 95, "running", 99_999.0)],
        ],
    );
    r.samples.insert(
        16,
        vec![
            vec![sample(16, 'S', 0, read, 1.0)],
            vec![sample(16, 'S', 0, read, 1.0)],
        ],
    );
    r.fds.insert((10, 3), "pipe:[4711]".into());
    r.names.insert(ID.into(), "web".into());
    r.versions
        .insert(QEMU.into(), "qemu-aarch64 version 7.2.22".into());
    r
}

fn opts(window_ms: u64, viewer: Viewer) -> ScanOptions {
    ScanOptions {
        window: Duration::from_millis(window_ms),
        container: None,
        viewer,
        host_arch: "x86_64".into(),
    }
}

fn interps() -> Interpreters {
    Interpreters::from_catalog(&Catalog::embedded().expect("catalog"))
}

#[test]
fn scan_finds_classifies_and_groups() {
    let r = scan(&recorded(), &interps(), &opts(1000, Viewer::Everything)).expect("scan");
    assert_eq!(r.scanned, 7);
    assert_eq!(r.unreadable.count, 1);
    assert!(r
        .unreadable
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("run as root")));
    let pids: Vec<i32> = r.processes().map(|p| p.pid).collect();
    assert_eq!(
        pids,
        [11, 16, 10],
        "host group first; no native, no qemu-by-name, no vanished"
    );
    let reader = r.processes().find(|p| p.pid == 10).expect("reader");
    assert_eq!(reader.class, Class::Blocked);
    assert_eq!(
        reader.summary,
        "blocked in read (pipe) for 42 s in all 1 threads; no CPU progress"
    );
    assert_eq!(reader.threads[0].wchan.as_deref(), Some("pipe_read"));
    assert_eq!(reader.emulator.handler, "qemu-aarch64");
    assert_eq!(
        reader.emulator.version.as_deref(),
        Some("qemu-aarch64 version 7.2.22")
    );
    assert_eq!(reader.guest.platform, "linux/arm64");
    let c = r
        .groups
        .last()
        .and_then(|g| g.container.clone())
        .expect("container");
    assert_eq!(
        (c.short_id.as_str(), c.name.as_deref()),
        ("3f4e8c1d2b7a", Some("web"))
    );
    let spin = r.processes().find(|p| p.pid == 11).expect("spin");
    assert_eq!(spin.class, Class::Spinning);
    assert_eq!(spin.guest.argv, ["/spin", "-n"]);
    assert_eq!(spin.threads[0].cpu_percent, Some(95.0));
    assert!(spin.threads[0].at_least);
}

#[test]
fn viewer_and_container_filters() {
    let r = scan(&recorded(), &interps(), &opts(1000, Viewer::Uid(1000))).expect("scan");
    let pids: Vec<i32> = r.processes().map(|p| p.pid).collect();
    assert_eq!(
        pids,
        [11, 10],
        "uid 2000's process is not shown to uid 1000"
    );
    assert!(r
        .unreadable
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("service")));
    let root = scan(&recorded(), &interps(), &opts(1000, Viewer::Uid(0))).expect("scan");
    assert_eq!(root.processes().count(), 3);
    let mut o = opts(0, Viewer::Everything);
    o.container = Some("web".into());
    let only = scan(&recorded(), &interps(), &o).expect("scan");
    assert_eq!(only.processes().map(|p| p.pid).collect::<Vec<_>>(), [10]);
    assert_eq!(only.window_ms, 0);
    let p = only.processes().next().expect("one");
    assert_eq!(p.threads[0].cpu_percent, None, "one pass: no CPU figures");
    assert_eq!(
        p.summary,
        "blocked in read (pipe) for 42 s in all 1 threads"
    );
}

#[test]
fn inspect_says_why_not() {
    let r = recorded();
    let o = opts(0, Viewer::Everything);
    assert!(matches!(
        inspect(&r, &interps(), &o, 99),
        Err(ProcsError::NoSuchPid { pid: 99 })
    ));
    assert!(matches!(
        inspect(&r, &interps(), &o, 14),
        Err(ProcsError::Denied { pid: 14 })
    ));
    assert!(matches!(
        inspect(&r, &interps(), &o, 13),
        Err(ProcsError::NotEmulated { .. })
    ));
    assert!(matches!(
        inspect(&r, &interps(), &o, 15),
        Err(ProcsError::NoSuchPid { pid: 15 })
    ));
    assert_eq!(
        inspect(&r, &interps(), &o, 10).expect("emulated").class,
        Class::Blocked
    );
}

#[test]
fn durations_read_well() {
    assert_eq!(duration(42_000, false), "42 s");
    assert_eq!(duration(1000, true), "at least 1 s");
    assert_eq!(duration(300_000, false), "5 min");
    assert_eq!(duration(250, false), "250 ms");
}
