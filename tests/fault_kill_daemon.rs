//! `kill -9` of `binfmtd daemon --no-bus` at each step of the change it makes at start (its
//! config wants linux/arm64), in a private instance: strace kills it on entering the N-th
//! `write` or `rename` (or every few `openat`/`unlink`) of any of its threads, for N = 1, 2,
//! ... until it finishes the change. After each kill `status` agrees with the kernel; a
//! restarted daemon recovers the journal and registers the platform; no other tool's entry
//! is lost; and no daemon is left running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::fault::{self, covers, kill_point};
use std::collections::BTreeSet;
use std::path::Path;

/// `dkill LABEL SET STRIDE [STRACE-OPTIONS]`: for N = 1, 1+STRIDE, ..., starts the daemon under strace
/// killing it at the N-th call of SET, waits until it was killed or finished its start
/// change (then stops it; `failed` when a probe helper was killed instead), records `snap LABEL.N.killed`, starts it again without strace
/// until it finished, stops it, records `snap LABEL.N.after`.
const DKILL: &str = r#"printf 'platforms = ["linux/arm64"]\n' > $T/config/binfmtd.toml
started() { grep -q "keeping the desired state" $1 2>/dev/null; }
stop() { # PID of strace or the daemon; the daemon is strace's child
    kids=$(cat /proc/$1/task/*/children 2>/dev/null || true)
    for k in $kids $1; do kill $k 2>/dev/null || true; done
    wait $1 || true
}
dkill() {
    label=$1; set=$2; stride=$3; extra=${4:-}
    n=1
    while [ $n -le 400 ]; do
        echo -1 > $B/qemu-aarch64 2>/dev/null || true
        rm -f $T/state/state.json $T/state/desired.toml
        log=$T/$label.$n.log
        strace -f -s 4096 $extra -o $T/$label.$n.strace -e trace=$set \
            -e inject=$set:signal=SIGKILL:when=$n $BIN daemon --no-bus 2>$log &
        spid=$!
        i=0; done=no
        while [ $i -lt 200 ] && kill -0 $spid 2>/dev/null; do
            if started $log; then
                done=failed; [ -e $B/qemu-aarch64 ] && done=yes
                break
            fi
            sleep 0.05; i=$((i+1))
        done
        if [ $done != no ]; then stop $spid; rc=$done; else rc=0; wait $spid || rc=$?; fi
        snap $label.$n.killed
        $BIN daemon --no-bus 2>$T/$label.$n.restart &
        dpid=$!
        i=0; while [ $i -lt 200 ] && ! started $T/$label.$n.restart; do sleep 0.05; i=$((i+1)); done
        stop $dpid
        snap $label.$n.after
        echo "$label $n $rc"
        [ $done != yes ] || break
        n=$((n + stride))
    done
}
"#;

/// Runs `dkill` for each (label, syscall set, stride); returns the kill points.
fn run(sets: &[(&str, &str, u32, &str)]) -> Vec<String> {
    if !fault::prerequisites(&["strace"]) {
        return vec![];
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    // A first start and stop warms the fact cache, so the steps are the same from N = 1.
    let mut script = format!(
        "{DKILL}echo \"$OTHER\" > $B/register\n$BIN daemon --no-bus 2>$T/warm.log & w=$!\n\
         i=0; while [ $i -lt 200 ] && ! started $T/warm.log; do sleep 0.05; i=$((i+1)); done\nstop $w\n"
    );
    for (label, set, stride, extra) in sets {
        script.push_str(&format!("dkill {label} {set} {stride} '{extra}'\n"));
    }
    let out = fault::sandbox(t, &["qemu-aarch64"], &script);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(no_daemon_left(t), "a daemon of this test is still running");
    let mut points = Vec::new();
    let want: BTreeSet<String> = ["other-tool", "qemu-aarch64"].map(String::from).into();
    for (label, _, _, _) in sets {
        let runs: Vec<(String, String)> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{label} ")))
            .map(|l| {
                let (n, rc) = l.split_once(' ').unwrap();
                (n.to_string(), rc.to_string())
            })
            .collect();
        assert!(runs.len() > 1, "{label}: killed at least once: {stdout}");
        assert_eq!(
            runs.last().unwrap().1,
            "yes",
            "{label}: finished in the end"
        );
        let killed = runs.iter().filter(|(_, rc)| rc == "137").count();
        assert!(killed >= 1, "{label}: {runs:?}");
        for (n, rc) in &runs {
            let tag = format!("{label}.{n}");
            if rc == "137" {
                points.push(kill_point(t, &tag));
            }
            let (status, _) = fault::recovered(t, &tag, &want);
            let e = status["entries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "qemu-aarch64")
                .unwrap();
            assert_eq!(e["owned"], true, "{tag}: {status}");
        }
    }
    points
}

/// True when no process has this test's state directory in its environment.
fn no_daemon_left(t: &Path) -> bool {
    let needle = format!("BINFMTD_STATE_DIR={}", t.join("state").display());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    !procs.flatten().any(|p| {
        std::fs::read(p.path().join("environ"))
            .map(|e| e.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
            .unwrap_or(false)
    })
}

#[test]
fn kill_9_of_the_daemon_at_each_write_and_rename_is_recovered_by_its_restart() {
    // Its threads count writes apart, and the native-ISA probes' writes come first, so the
    // writes to `register` are counted on their own too (`-P`).
    let points = run(&[
        ("write", "write", 1, ""),
        (
            "register",
            "write",
            1,
            "-P /proc/sys/fs/binfmt_misc/register",
        ),
        ("rename", "rename,renameat,renameat2", 1, ""),
    ]);
    if points.is_empty() {
        return;
    }
    covers(&points, "at the register write", ":qemu-aarch64:M:");
    covers(&points, "at a rename of the state file", "state.json");
}

#[test]
fn kill_9_of_the_daemon_at_opens_and_unlinks_is_recovered_by_its_restart() {
    let points = run(&[
        ("open", "openat", 7, ""),
        ("unlink", "unlink,unlinkat", 3, ""),
    ]);
    assert!(points.is_empty() || points.iter().any(|p| p.contains("openat")));
}
