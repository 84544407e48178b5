//! Fault injection in private instances: binfmt_misc unmounted after binfmtd registered
//! (since Linux 6.7 that frees every entry) and between planning and registering; the state
//! directory read-only or full. A clear error or a recovery, nothing of a failed change left
//! in the kernel, no other tool's entry lost by binfmtd, and `status` equal to the kernel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::fault::{self, consistent, listed, pending};
use std::collections::BTreeSet;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn unmounted_after_registering_status_names_what_was_lost_and_install_brings_it_back() {
    if !fault::prerequisites(&[]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let script = r#"echo "$OTHER" > $B/register
$BIN install arm64 >/dev/null
umount $B
snap lost
$BIN status > $T/lost.txt
$BIN install arm64 > $T/again.txt 2>&1
snap again
"#;
    let out = fault::sandbox(t, &["qemu-aarch64"], script);
    assert!(out.status.success());
    let (status, state) = consistent(t, "lost");
    assert_eq!(status["mounted"], false);
    assert_eq!(status["missing"][0]["name"], "qemu-aarch64", "{status}");
    assert!(
        state["entries"]["qemu-aarch64"].is_object(),
        "still recorded"
    );
    let text = std::fs::read_to_string(t.join("lost.txt")).unwrap();
    assert!(
        text.contains("qemu-aarch64 are not registered") && text.contains("unmounted"),
        "status says what was lost and why: {text}"
    );
    let again = std::fs::read_to_string(t.join("again.txt")).unwrap();
    assert!(
        again.contains("was not mounted") && again.contains("were not in the kernel"),
        "install says what it found: {again}"
    );
    let (status, state) = consistent(t, "again");
    assert_eq!(status["missing"], serde_json::json!([]), "{status}");
    assert_eq!(pending(&state), 0);
    // The unmount freed the other tool's entry too: the kernel did, not binfmtd.
    assert_eq!(listed(t, "again"), set(&["qemu-aarch64"]));
}

#[test]
fn unmounted_between_planning_and_registering_fails_clearly_and_records_nothing() {
    if !fault::prerequisites(&["strace"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    // strace holds binfmtd at its open of `register` (after planning) while the instance
    // is unmounted.
    let script = r#"echo "$OTHER" > $B/register
strace -f -o /dev/null -P $B/register -e trace=openat -e inject=openat:delay_enter=1s \
    $BIN install arm64 > $T/raced.txt 2>&1 &
sleep 0.5
umount $B
rc=0; wait $! || rc=$?
echo "install=$rc"
snap raced
cp $T/state/desired.toml $T/raced.desired 2>/dev/null || true
$BIN install arm64 >/dev/null
snap after
"#;
    let out = fault::sandbox(t, &["qemu-aarch64"], script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("install=1"), "{stdout}");
    let raced = std::fs::read_to_string(t.join("raced.txt")).unwrap();
    assert!(raced.contains("binfmt_misc is not mounted at"), "{raced}");
    let (status, state) = consistent(t, "raced");
    assert_eq!(status["mounted"], false);
    assert_eq!(pending(&state), 0, "no journal left: {state}");
    assert!(
        state["entries"].as_object().is_none_or(|e| e.is_empty()),
        "{state}"
    );
    let desired = std::fs::read_to_string(t.join("raced.desired")).unwrap_or_default();
    assert!(!desired.contains("qemu-aarch64"), "not wanted: {desired}");
    let (_, state) = consistent(t, "after");
    assert_eq!(pending(&state), 0);
    assert_eq!(listed(t, "after"), set(&["qemu-aarch64"]));
}

#[test]
fn read_only_state_directory_fails_with_exit_2_naming_it_and_registers_nothing() {
    if !fault::prerequisites(&[]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let script = r#"echo "$OTHER" > $B/register
mkdir -p $T/state
mount -t tmpfs -o size=64k tmpfs $T/state
mount -o remount,ro $T/state
rc=0; $BIN install arm64 > $T/ro.txt 2>&1 || rc=$?
echo "install=$rc"
snap ro
"#;
    let out = fault::sandbox(t, &["qemu-aarch64"], script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("install=2"),
        "I/O error is exit 2: {stdout}"
    );
    let text = std::fs::read_to_string(t.join("ro.txt")).unwrap();
    let state_dir = t.join("state").display().to_string();
    assert!(
        text.contains(&state_dir) && text.contains("remount it read-write"),
        "names the directory and the remedy: {text}"
    );
    consistent(t, "ro");
    assert_eq!(listed(t, "ro"), set(&["other-tool"]));
}

/// A tmpfs of 16 pages as the state directory, with all but `free` pages taken: with none
/// free `desired.toml` cannot be written, with one the journal cannot, with two the final
/// record cannot (after registering: the registration is undone). Enough room succeeds.
#[test]
fn full_state_directory_fails_with_exit_2_and_leaves_no_entry_registered() {
    if !fault::prerequisites(&[]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let script = r#"echo "$OTHER" > $B/register
mkdir -p $T/state
for free in 0 1 2 3 4; do
    mount -t tmpfs -o size=64k tmpfs $T/state
    head -c $(( (16 - free) * 4096 )) /dev/zero > $T/state/fill
    rc=0; $BIN install arm64 --persist > $T/full$free.txt 2>&1 || rc=$?
    echo "free=$free install=$rc"
    snap full$free
    ls $T/binfmt.d > $T/full$free.bd 2>/dev/null || true
    cat $T/state/desired.toml > $T/full$free.desired 2>/dev/null || true
    rm $T/state/fill
    snap freed$free
    $BIN install arm64 --persist > /dev/null
    snap fixed$free
    $BIN uninstall arm64 > /dev/null
    umount $T/state
done
"#;
    let out = fault::sandbox(t, &["qemu-aarch64"], script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let state_dir = t.join("state").display().to_string();
    let mut failed = 0;
    for free in 0..=4 {
        let text = std::fs::read_to_string(t.join(format!("full{free}.txt"))).unwrap();
        let full = format!("full{free}");
        consistent(t, &full);
        if stdout.contains(&format!("free={free} install=2")) {
            failed += 1;
            assert!(
                text.contains(&state_dir) && text.contains("No space left"),
                "{free} free: names the directory and the cause: {text}"
            );
            assert_eq!(
                listed(t, &full),
                set(&["other-tool"]),
                "{free} free: nothing registered: {text}"
            );
            let files = std::fs::read_to_string(t.join(format!("{full}.bd"))).unwrap();
            assert!(
                !files.contains("qemu-aarch64"),
                "{free} free: no binfmt.d file left: {files}"
            );
            let desired = std::fs::read_to_string(t.join(format!("{full}.desired"))).unwrap();
            assert!(
                !desired.contains("qemu-aarch64"),
                "{free} free: not recorded as wanted: {desired}"
            );
        } else {
            assert!(
                stdout.contains(&format!("free={free} install=0")),
                "{stdout}"
            );
            assert_eq!(listed(t, &full), set(&["other-tool", "qemu-aarch64"]));
        }
        let (_, state) = consistent(t, &format!("freed{free}"));
        assert!(pending(&state) <= 1, "{state}");
        let (_, state) = consistent(t, &format!("fixed{free}"));
        assert_eq!(pending(&state), 0, "{free} free: recovered: {state}");
        assert_eq!(
            listed(t, &format!("fixed{free}")),
            set(&["other-tool", "qemu-aarch64"])
        );
    }
    assert!(
        failed >= 3,
        "the first three fill levels must fail: {stdout}"
    );
    assert!(
        stdout.contains("free=4 install=0"),
        "enough room succeeds: {stdout}"
    );
}
