//! Fault injection in private instances: racing `install` runs (the state lock serializes
//! them; nothing any of them recorded is lost) and another tool registering the same entry
//! name while binfmtd installs (`EEXIST`: binfmtd keeps its hands off the other tool's entry
//! without `--force`, says why, and records nothing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::fault::{self, consistent, listed, pending};
use std::collections::BTreeSet;

const HANDLERS: [&str; 3] = ["qemu-aarch64", "qemu-riscv64", "qemu-s390x"];

#[test]
fn racing_installs_serialize_and_end_as_status_reports() {
    if !fault::prerequisites(&["qemu-riscv64-static", "qemu-s390x-static"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    // Three rounds of six runs at once (each platform twice), then one more round that
    // also uninstalls, each round checked.
    let script = r#"echo "$OTHER" > $B/register
for round in 1 2 3; do
    pids=""
    for p in arm64 riscv64 s390x arm64 riscv64 s390x; do
        $BIN install $p > $T/r$round.$p.$$ 2>&1 &
        pids="$pids $!"
    done
    for pid in $pids; do rc=0; wait $pid || rc=$?; echo "round=$round rc=$rc"; done
    snap round$round
    cp $T/state/desired.toml $T/round$round.desired
    [ $round = 3 ] || $BIN uninstall all > /dev/null
done
pids=""
$BIN uninstall arm64 > /dev/null 2>&1 & pids="$pids $!"
$BIN install riscv64 > /dev/null 2>&1 & pids="$pids $!"
$BIN uninstall s390x > /dev/null 2>&1 & pids="$pids $!"
$BIN install arm64 > /dev/null 2>&1 & pids="$pids $!"
for pid in $pids; do rc=0; wait $pid || rc=$?; echo "mixed rc=$rc"; done
snap mixed
"#;
    let out = fault::sandbox(t, &HANDLERS, script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout.matches("rc=0").count(),
        22,
        "every run succeeds: {stdout}"
    );
    for round in 1..=3 {
        let tag = format!("round{round}");
        let (status, state) = consistent(t, &tag);
        assert_eq!(pending(&state), 0, "{tag}: {state}");
        let all: BTreeSet<String> = HANDLERS
            .iter()
            .map(|s| s.to_string())
            .chain(["other-tool".to_string()])
            .collect();
        assert_eq!(listed(t, &tag), all, "{tag}");
        for h in HANDLERS {
            let e = status["entries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == h)
                .unwrap();
            assert_eq!(e["owned"], true, "{tag}: {h} is binfmtd's");
        }
        let desired = std::fs::read_to_string(t.join(format!("{tag}.desired"))).unwrap();
        for h in HANDLERS {
            assert!(
                desired.contains(&format!("[installed.{h}]")),
                "{tag}: no recorded request is lost: {desired}"
            );
        }
    }
    // Mixed: whatever order the lock gave, the kernel, the state and status agree, and
    // the other tool's entry is still there.
    let (_, state) = consistent(t, "mixed");
    assert_eq!(pending(&state), 0);
    let mixed = listed(t, "mixed");
    assert!(
        mixed.contains("other-tool") && mixed.contains("qemu-riscv64"),
        "{mixed:?}"
    );
    assert!(!mixed.contains("qemu-s390x"), "{mixed:?}");
}

#[test]
fn another_tool_registering_the_same_name_meanwhile_keeps_its_entry() {
    if !fault::prerequisites(&["strace"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    // strace holds binfmtd at its open of `register` (after planning against an instance
    // without qemu-aarch64) while the other tool registers that name: binfmtd's write then
    // gets EEXIST. Then the same without holding: the other tool starts 0 to 108 ms after
    // binfmtd and tries in a tight loop.
    let script = r#"LINE=':qemu-aarch64:E::race::/bin/true:'
strace -f -o /dev/null -P $B/register -e trace=openat -e inject=openat:delay_enter=1s \
    $BIN install arm64 > $T/eexist.txt 2>&1 &
sleep 0.5
echo "$LINE" > $B/register
rc=0; wait $! || rc=$?
echo "install=$rc"
snap eexist
cat $B/qemu-aarch64 > $T/eexist.entry
cp $T/state/desired.toml $T/eexist.desired
$BIN install arm64 > $T/again.txt 2>&1 || echo "again=$?"
snap again
$BIN install arm64 --force > /dev/null
snap forced
echo -1 > $B/qemu-aarch64
$BIN uninstall all > /dev/null
i=0
while [ $i -lt 10 ]; do
    ( sleep "$(printf 0.%03d $((i * 12)))"; n=0; while [ $n -lt 200 ]; do echo "$LINE" > $B/register 2>/dev/null && break; n=$((n+1)); done ) &
    other=$!
    rc=0; $BIN install arm64 > /dev/null 2>&1 || rc=$?
    wait $other
    echo "loop=$i rc=$rc"
    snap loop$i
    cat $B/qemu-aarch64 > $T/loop$i.entry
    echo -1 > $B/qemu-aarch64
    $BIN uninstall all > /dev/null 2>&1 || true
    i=$((i+1))
done
"#;
    let out = fault::sandbox(t, &["qemu-aarch64"], script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("install=1"), "{stdout}");
    let text = std::fs::read_to_string(t.join("eexist.txt")).unwrap();
    assert!(
        text.contains("EEXIST") && text.contains("already exists"),
        "{text}"
    );
    let entry = std::fs::read_to_string(t.join("eexist.entry")).unwrap();
    assert!(
        entry.contains("/bin/true") && entry.contains("race"),
        "the other tool's entry is intact: {entry}"
    );
    let (status, state) = consistent(t, "eexist");
    assert_eq!(pending(&state), 0);
    assert_eq!(status["entries"][0]["owned"], false, "{status}");
    let desired = std::fs::read_to_string(t.join("eexist.desired")).unwrap();
    assert!(!desired.contains("qemu-aarch64"), "{desired}");
    // A second install sees the other tool's entry and refuses plainly; --force replaces it.
    assert!(stdout.contains("again=1"), "{stdout}");
    let again = std::fs::read_to_string(t.join("again.txt")).unwrap();
    assert!(again.contains("--force"), "{again}");
    consistent(t, "again");
    let (status, _) = consistent(t, "forced");
    assert_eq!(status["entries"][0]["owned"], true, "{status}");
    // The loop: whoever won, the entry is whole and status says whose it is.
    for i in 0..10 {
        let tag = format!("loop{i}");
        let (status, state) = consistent(t, &tag);
        assert_eq!(pending(&state), 0, "{tag}");
        let entry = std::fs::read_to_string(t.join(format!("{tag}.entry"))).unwrap();
        let owned = status["entries"][0]["owned"] == true;
        assert_eq!(
            owned,
            !entry.contains("/bin/true"),
            "{tag}: {entry} {status}"
        );
        assert_eq!(
            stdout.contains(&format!("loop={i} rc=0")),
            owned,
            "{tag}: binfmtd succeeds exactly when its entry is there: {stdout}"
        );
    }
}
