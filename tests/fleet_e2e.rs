//! Fleet checks through the real binary in a private binfmt_misc instance: `binfmtd daemon
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! --no-bus --metrics-file` keeps Prometheus text that Debian's `promtool check metrics`
//! accepts; `platforms --require` answers from the daemon's record (ready, not ready, after a
//! flush and its repair); `--max-age` notices a dead daemon; `binfmtd metrics` works with and
//! without the daemon.

mod common;

fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!("<<{name}>>\n"))
        .unwrap_or_else(|| panic!("no section {name} in {text}"));
    let rest = &text[start + name.len() + 5..];
    &rest[..rest.find("<<").unwrap_or(rest.len())]
}

const SCRIPT: &str = r#"
export BINFMTD_STATE_DIR=$T/state BINFMTD_BINFMT_D_DIR=$T/binfmt.d BINFMTD_CONFIG_DIR=$T/etc
mkdir -p $T/etc $T/metrics
echo 'platforms = ["linux/arm64"]' > $T/etc/binfmtd.toml
$BIN daemon --no-bus --check-interval 1 --metrics-file $T/metrics/binfmtd.prom >/dev/null 2>$T/daemon.log &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
# x CMD...: runs CMD and prints its exit code (the script runs under sh -e).
x() { rc=0; "$@" || rc=$?; echo "exit=$rc"; }
promtool() { $PROMTOOL check metrics < "$1" 2>&1; }
until_ok() { i=0; until "$@"; do i=$((i+1)); [ $i -lt 200 ] || return 1; sleep 0.05; done; }
until_ok test -e $T/metrics/binfmtd.prom
until_ok $BIN platforms --require linux/arm64 >/dev/null
echo "<<promtool-file>>"; x promtool $T/metrics/binfmtd.prom
echo "<<ready>>"; x $BIN platforms --require linux/arm64,amd64 --max-age 30
echo "<<ready-json>>"; $BIN --json platforms --require arm64; echo
echo "<<not-ready>>"; x $BIN platforms --require linux/s390x
echo -1 > /proc/sys/fs/binfmt_misc/status
echo "<<flushed>>"; x $BIN platforms --require linux/arm64
until_ok grep -q '^binfmtd_drift_repairs_total [1-9]' $T/metrics/binfmtd.prom
until_ok $BIN platforms --require linux/arm64 >/dev/null
echo "<<repaired>>"; cat $T/metrics/binfmtd.prom
echo "<<metrics>>"; $BIN metrics > $T/m1; x promtool $T/m1; grep -c '^binfmtd_' $T/m1
kill $pid; wait $pid || true
echo "<<dead>>"; x $BIN platforms --max-age 600
echo "<<direct>>"; $BIN metrics > $T/m2; x promtool $T/m2; grep '^binfmtd_platform_verified' $T/m2
echo "<<end>>"
"#;

#[test]
fn daemon_metrics_and_readiness() {
    if !common::require_tool("qemu-aarch64-static") {
        return;
    }
    let promtool = common::debian_tools().join("usr/bin/promtool");
    let t = tempfile::tempdir().unwrap();
    let out = common::private_instance_sh(SCRIPT, &[("T", t.path()), ("PROMTOOL", &promtool)]);
    let text = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(t.path().join("daemon.log")).unwrap_or_default();
    assert!(out.status.success(), "{text}\n{log}");
    // promtool prints nothing and exits 0 for a clean exposition.
    assert_eq!(section(&text, "promtool-file").trim(), "exit=0", "{log}");
    let ready = section(&text, "ready");
    assert!(
        ready.contains("ok   linux/arm64") && ready.contains("ok   linux/amd64"),
        "{ready}"
    );
    assert!(ready.ends_with("exit=0\n"), "{ready}");
    let doc: serde_json::Value = serde_json::from_str(section(&text, "ready-json")).unwrap();
    assert_eq!(doc["ready"], true);
    assert_eq!(doc["required"][0]["handler"], "qemu-aarch64");
    let not = section(&text, "not-ready");
    assert!(
        not.contains("linux/s390x is not registered") && not.ends_with("exit=1\n"),
        "{not}"
    );
    let flushed = section(&text, "flushed");
    assert!(flushed.ends_with("exit=1\n"), "{flushed}");
    let repaired = section(&text, "repaired");
    for want in [
        "binfmtd_platform_verified{platform=\"linux/arm64\",handler=\"qemu-aarch64\",how=\"emulated\"} 1",
        "binfmtd_failed_handlers 0",
    ] {
        assert!(repaired.lines().any(|l| l == want), "{want} missing:\n{repaired}");
    }
    assert!(repaired.contains("binfmtd_interpreter_info{handler=\"qemu-aarch64\",path=\"/usr/bin/qemu-aarch64-static\",version=\"qemu-aarch64 version "), "{repaired}");
    let stamp = repaired
        .lines()
        .find_map(|l| l.strip_prefix("binfmtd_last_drift_repair_timestamp_seconds "))
        .unwrap();
    assert!(stamp.parse::<f64>().unwrap() > 1.0e9, "{stamp}");
    let metrics = section(&text, "metrics");
    assert!(metrics.starts_with("exit=0\n"), "{metrics}");
    let dead = section(&text, "dead");
    assert!(
        dead.contains("is not running") && dead.ends_with("exit=1\n"),
        "{dead}"
    );
    let direct = section(&text, "direct");
    assert!(direct.starts_with("exit=0\n"), "{direct}");
    assert!(
        direct.contains("platform=\"linux/arm64\",handler=\"qemu-aarch64\",how=\"emulated\"} 1"),
        "{direct}"
    );
}
