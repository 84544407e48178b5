//! `kill -9` of the CLI at each step of a change, in private instances: strace kills
//! `binfmtd install` / `uninstall` on entering its N-th `write` (journal, register line,
//! binfmt.d file, desired state), `renameat` (each atomic replacement), `unlink`/`unlinkat`
//! and `openat`, for N = 1, 2, ... until the command completes. After each kill `status`
//! agrees with the kernel and names an unfinished change; the next command recovers (the
//! journal is undone), no other tool's entry is lost, and the end state is what `status`
//! reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::fault::{self, consistent, covers, kill_point, listed, pending};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `killrun LABEL SET SETUP RECOVER ARGS...`: for N = 1.., runs SETUP, then `binfmtd ARGS`
/// under strace killing it at the N-th syscall of SET (its log in `LABEL.N.strace`), records
/// `snap LABEL.N.killed`, runs RECOVER, records `snap LABEL.N.after`; stops when the command
/// was not killed.
const KILLRUN: &str = r#"killrun() {
    label=$1; set=$2; setup=$3; recover=$4; shift 4
    n=1
    while [ $n -le 200 ]; do
        eval "$setup" > /dev/null 2>&1 || true
        rc=0
        strace -f -s 4096 -o $T/$label.$n.strace -e trace=$set -e inject=$set:signal=SIGKILL:when=$n \
            $BIN "$@" > /dev/null 2>&1 || rc=$?
        snap $label.$n.killed
        rrc=0; eval "$recover" > $T/$label.$n.recover 2>&1 || rrc=$?
        snap $label.$n.after
        ls $T/binfmt.d > $T/$label.$n.bd 2>/dev/null || true
        cat $B/qemu-aarch64 > $T/$label.$n.entry 2>/dev/null || true
        echo "$label $n $rc $rrc"
        [ $rc = 137 ] || break
        n=$((n+1))
    done
}
"#;

const SETS: [(&str, &str); 4] = [
    ("write", "write"),
    ("rename", "rename,renameat,renameat2"),
    ("unlink", "unlink,unlinkat"),
    ("open", "openat"),
];

/// Runs `killrun` for every syscall set; returns label → [(n, killed rc, recovery rc)].
fn run(
    dir: &Path,
    setup: &str,
    recover: &str,
    args: &str,
) -> BTreeMap<String, Vec<(u32, i32, i32)>> {
    // A first install and uninstall warm the fact cache, so the steps a run takes (and
    // the syscalls counted) are the same from the first kill on.
    let mut script = format!(
        "{KILLRUN}echo \"$OTHER\" > $B/register\n$BIN install arm64 >/dev/null\n$BIN uninstall arm64 >/dev/null\n"
    );
    for (label, set) in SETS {
        script.push_str(&format!(
            "killrun {label} {set} '{setup}' '{recover}' {args}\n"
        ));
    }
    let out = fault::sandbox(dir, &["qemu-aarch64"], &script);
    assert!(out.status.success());
    let mut runs: BTreeMap<String, Vec<(u32, i32, i32)>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if let [label, n, rc, rrc] = w[..] {
            runs.entry(label.to_string()).or_default().push((
                n.parse().unwrap(),
                rc.parse().unwrap(),
                rrc.parse().unwrap(),
            ));
        }
    }
    for (label, _) in SETS {
        let r = &runs[label];
        assert!(r.len() > 1, "{label}: killed at least once: {r:?}");
        assert_ne!(r.last().unwrap().1, 137, "{label}: the last run completed");
    }
    runs
}

/// What the killed runs were doing when killed.
fn kill_points(dir: &Path, runs: &BTreeMap<String, Vec<(u32, i32, i32)>>) -> Vec<String> {
    let killed = |(label, r): (&String, &Vec<(u32, i32, i32)>)| {
        r.iter()
            .filter(|(_, rc, _)| *rc == 137)
            .map(|(n, _, _)| kill_point(dir, &format!("{label}.{n}")))
            .collect::<Vec<_>>()
    };
    runs.iter().flat_map(killed).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn check_each(dir: &Path, runs: &BTreeMap<String, Vec<(u32, i32, i32)>>, after: &[&str]) {
    for (label, r) in runs {
        for (n, _, rrc) in r {
            let tag = format!("{label}.{n}");
            fault::recovered(dir, &tag, &set(after));
            assert_eq!(*rrc, 0, "{tag}: the next command succeeds");
        }
    }
}

#[test]
fn kill_9_of_install_at_each_step_is_recovered_by_the_next_command() {
    if !fault::prerequisites(&["strace"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let runs = run(
        t,
        "$BIN uninstall arm64",
        "$BIN install arm64 --persist",
        "install arm64 --persist",
    );
    check_each(t, &runs, &["other-tool", "qemu-aarch64"]);
    for (label, r) in &runs {
        for (n, _, _) in r {
            let bd = std::fs::read_to_string(t.join(format!("{label}.{n}.bd"))).unwrap();
            assert!(
                bd.contains("binfmtd-qemu-aarch64.conf"),
                "{label}.{n}: {bd}"
            );
        }
    }
    let points = kill_points(t, &runs);
    covers(&points, "at the desired state's write", "uninstalled = ");
    covers(&points, "at the journal's write", "pending");
    covers(&points, "at the register write", ":qemu-aarch64:M:");
    covers(&points, "at the binfmt.d file", "# Written by binfmtd");
    covers(&points, "at a rename of the state file", "state.json");
    covers(
        &points,
        "at the rename of the binfmt.d file",
        "binfmtd-qemu-aarch64.conf",
    );
    covers(&points, "at the open of register", "binfmt_misc/register");
}

#[test]
fn kill_9_of_uninstall_at_each_step_is_recovered_by_the_next_command() {
    if !fault::prerequisites(&["strace"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let runs = run(
        t,
        "$BIN install arm64 --persist",
        "$BIN uninstall arm64",
        "uninstall arm64",
    );
    check_each(t, &runs, &["other-tool"]);
    for (label, r) in &runs {
        for (n, _, _) in r {
            let bd = std::fs::read_to_string(t.join(format!("{label}.{n}.bd"))).unwrap();
            assert!(!bd.contains("qemu-aarch64"), "{label}.{n}: file left: {bd}");
        }
    }
    let points = kill_points(t, &runs);
    covers(
        &points,
        "at the entry's removal",
        "qemu-aarch64\", O_WRONLY",
    );
    covers(
        &points,
        "at the binfmt.d file's removal",
        "binfmtd-qemu-aarch64.conf",
    );
    covers(&points, "at a rename of the state file", "state.json");
}

/// Another tool's qemu-aarch64 entry replaced with `--force`: killed anywhere, the next
/// (unforced) install either finds binfmtd's finished replacement or puts the other tool's
/// entry back exactly and refuses to touch it.
#[test]
fn kill_9_of_a_forced_replacement_never_loses_the_other_tools_entry() {
    if !fault::prerequisites(&["strace"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let setup = "echo -1 > $B/qemu-aarch64; $BIN uninstall arm64; echo :qemu-aarch64:E::fx::/bin/true: > $B/register";
    let runs = run(t, setup, "$BIN install arm64", "install arm64 --force");
    for (label, r) in &runs {
        for (n, _, rrc) in r {
            let tag = format!("{label}.{n}");
            consistent(t, &format!("{tag}.killed"));
            let (status, state) = consistent(t, &format!("{tag}.after"));
            assert_eq!(pending(&state), 0, "{tag}: {state}");
            assert_eq!(
                listed(t, &format!("{tag}.after")),
                set(&["other-tool", "qemu-aarch64"]),
                "{tag}: no entry lost"
            );
            let entry = std::fs::read_to_string(t.join(format!("{tag}.entry"))).unwrap();
            let e = status["entries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "qemu-aarch64")
                .unwrap();
            if entry.contains("/bin/true") {
                assert!(
                    entry.contains("extension .fx"),
                    "{tag}: exactly as before: {entry}"
                );
                assert_eq!(e["owned"], false, "{tag}");
                assert_eq!(
                    *rrc, 1,
                    "{tag}: without --force the other tool's entry stays"
                );
            } else {
                assert_eq!(e["owned"], true, "{tag}: {status}");
                assert_eq!(*rrc, 0, "{tag}");
            }
        }
    }
    let points = kill_points(t, &runs);
    covers(
        &points,
        "at the other entry's removal",
        "qemu-aarch64\", O_WRONLY",
    );
    covers(&points, "at the register write", ":qemu-aarch64:M:");
}
