//! Fault injection in private binfmt_misc instances (`binfmtd sandbox --empty`): what the
//! kernel, `status` and `doctor` say after someone else deletes or chmods an F entry's
//! interpreter, switches binfmt_misc's status off, or truncates the state file; and that no
//! other tool's entry is lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

/// `binfmtd sandbox --empty -- sh -ec SCRIPT` with state/config/binfmt.d under `dir`, and a
/// drop-in pointing qemu-aarch64 at `$T/q`, a copy of qemu-aarch64-static.
fn sandbox(dir: &Path, script: &str) -> Output {
    let conf = dir.join("config/interpreters.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::copy("/usr/bin/qemu-aarch64-static", dir.join("q")).unwrap();
    let embedded = Path::new(env!("CARGO_MANIFEST_DIR")).join("interpreters/qemu-aarch64.toml");
    let text: Vec<String> = std::fs::read_to_string(embedded)
        .unwrap()
        .lines()
        .map(|l| match l.starts_with("interpreters") {
            true => format!("interpreters = [{:?}]", dir.join("q")),
            false => l.to_string(),
        })
        .collect();
    std::fs::write(conf.join("qemu-aarch64.toml"), text.join("\n")).unwrap();
    let out = Command::new(common::binfmtd_bin())
        .args(["sandbox", "--empty", "--", "sh", "-ec", script])
        .env("BINFMTD_STATE_DIR", dir.join("state"))
        .env("BINFMTD_CONFIG_DIR", dir.join("config"))
        .env("BINFMTD_BINFMT_D_DIR", dir.join("binfmt.d"))
        .env("BINFMTD_NO_DAEMON", "1")
        .env("BIN", common::binfmtd_bin())
        .env("HELLO", common::cross_bins().join("hello-aarch64-static"))
        .env("T", dir)
        .output()
        .unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn prerequisites() -> bool {
    common::require_tool("qemu-aarch64-static") && common::require_tool("aarch64-linux-gnu-gcc")
}

#[test]
fn f_entry_keeps_working_without_its_interpreter_and_doctor_says_so() {
    if !prerequisites() {
        return;
    }
    for (damage, finding) in [
        ("rm $T/q", "interpreter-missing"),
        ("chmod 0644 $T/q", "interpreter-not-executable"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            r#"echo ':other-tool:E::fault-ext::/bin/true:' > /proc/sys/fs/binfmt_misc/register
$BIN install arm64 >/dev/null
{damage}
echo "run: $($HELLO)"
$BIN doctor --json $HELLO > $T/doctor.json && echo doctor=0 || echo doctor=$?
$BIN status --json > $T/status.json
"#
        );
        let out = sandbox(dir.path(), &script);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{damage}: {text}");
        assert!(
            text.contains("run: hello from aarch64"),
            "{damage}: with F it still runs: {text}"
        );
        assert!(
            text.contains("doctor=0"),
            "{damage}: doctor must not say it will not run: {text}"
        );
        let doctor = std::fs::read_to_string(dir.path().join("doctor.json")).unwrap();
        assert!(
            doctor.contains(&format!("\"id\": \"{finding}\""))
                && doctor.contains("\"severity\": \"warning\""),
            "{damage}: doctor warns with {finding}: {doctor}"
        );
        let status = std::fs::read_to_string(dir.path().join("status.json")).unwrap();
        assert!(
            status.contains("qemu-aarch64") && status.contains("other-tool"),
            "{status}"
        );
    }
}

#[test]
fn status_switched_off_by_someone_else_is_reported_by_status_and_doctor() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"$BIN install arm64 >/dev/null
echo 0 > /proc/sys/fs/binfmt_misc/status
$HELLO && echo ran || echo "run failed: $?"
$BIN status > $T/status.txt
$BIN doctor $HELLO > $T/doctor.txt && echo doctor=0 || echo doctor=$?
"#;
    let out = sandbox(dir.path(), script);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("run failed"), "{text}");
    assert!(text.contains("doctor=1"), "{text}");
    let status = std::fs::read_to_string(dir.path().join("status.txt")).unwrap();
    assert!(status.contains("DISABLED"), "{status}");
    let doctor = std::fs::read_to_string(dir.path().join("doctor.txt")).unwrap();
    assert!(doctor.contains("binfmt-disabled"), "{doctor}");
}

#[test]
fn truncated_state_file_is_kept_aside_and_reported_and_no_entry_is_lost() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"echo ':other-tool:E::fault-ext::/bin/true:' > /proc/sys/fs/binfmt_misc/register
$BIN install arm64 >/dev/null
head -c 40 $T/state/state.json > $T/cut && cp $T/cut $T/state/state.json
$BIN install arm64 --json > $T/install.json || true
ls /proc/sys/fs/binfmt_misc > $T/entries
"#;
    let out = sandbox(dir.path(), script);
    assert!(out.status.success());
    let install = std::fs::read_to_string(dir.path().join("install.json")).unwrap();
    assert!(install.contains("corrupt"), "the user is told: {install}");
    let cut = std::fs::read(dir.path().join("cut")).unwrap();
    let aside = std::fs::read(dir.path().join("state/state.json.corrupt")).unwrap();
    assert_eq!(aside, cut, "the corrupt file is kept aside as it was");
    let entries = std::fs::read_to_string(dir.path().join("entries")).unwrap();
    assert!(
        entries.contains("other-tool") && entries.contains("qemu-aarch64"),
        "{entries}"
    );
}
