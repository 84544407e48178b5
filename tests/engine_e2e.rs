//! End-to-end tests of the engine's promises through the real binary, each in a private
//! binfmt_misc instance (`binfmtd sandbox --empty`): a failed probe or a refused forced
//! replacement is undone, a refused change records nothing, install clears `disabled`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::env::{docs, handler, stdout, Env};

/// Debian's own qemu-aarch64 line, as another tool registers it.
const DEBIAN_AARCH64: &str = r"printf ':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF' > /proc/sys/fs/binfmt_misc/register";

fn desired(env: &Env) -> String {
    std::fs::read_to_string(env.path("state/desired.toml")).unwrap_or_default()
}

#[test]
fn a_registration_whose_probe_fails_is_undone() {
    if !common::require_tool("qemu-s390x-static") {
        return;
    }
    let env = Env::new();
    // The wrong emulator for the ISA: it registers, but the probe cannot run.
    env.dropin_interpreter("qemu-aarch64", "/usr/bin/qemu-s390x-static");
    let out = env.sandbox_sh(
        "$BIN install linux/arm64 --json || echo exit=$?; echo ===; ls /proc/sys/fs/binfmt_misc",
    );
    let text = stdout(&out);
    assert!(text.contains("exit=1"), "{text}");
    let report = &docs(&out)[0];
    let h = handler(report, "qemu-aarch64");
    assert_eq!(h["result"], "failed");
    assert_eq!(h["outcome"], "failed");
    let error = h["error"].as_str().unwrap();
    assert!(
        error.contains("probe failed") && error.contains("undone"),
        "{error}"
    );
    assert!(
        !text.contains("\nqemu-aarch64\n"),
        "entry left registered: {text}"
    );
    let state = std::fs::read_to_string(env.path("state/state.json")).unwrap_or_default();
    assert!(!state.contains("qemu-aarch64"), "{state}");
    assert!(!desired(&env).contains("qemu-aarch64"), "{}", desired(&env));
}

#[test]
fn a_refused_forced_replacement_puts_the_other_entry_back() {
    if !common::require_tool("qemu-aarch64-static") {
        return;
    }
    let env = Env::new();
    let noexec = format!("{}/noexec/qemu-aarch64-static", env.dir.path().display());
    env.dropin_interpreter("qemu-aarch64", &noexec);
    let script = format!(
        "{DEBIAN_AARCH64}
mkdir -p $T/noexec; mount -t tmpfs -o noexec tmpfs $T/noexec; cp /usr/bin/qemu-aarch64-static $T/noexec/
cat /proc/sys/fs/binfmt_misc/qemu-aarch64 > $T/before
$BIN install linux/arm64 --force --json || echo exit=$?
cat /proc/sys/fs/binfmt_misc/qemu-aarch64 > $T/after"
    );
    let out = env.sandbox_sh(&script);
    let text = stdout(&out);
    assert!(text.contains("exit=1"), "{text}");
    let h = handler(&docs(&out)[0], "qemu-aarch64").clone();
    let error = h["error"].as_str().unwrap();
    assert!(
        error.contains("EACCES") && error.contains("noexec"),
        "{error}"
    );
    assert!(!error.contains("CAP_SYS_ADMIN"), "mislabelled: {error}");
    assert!(
        error.contains("registered again exactly as before"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("before")).unwrap(),
        std::fs::read_to_string(env.path("after")).unwrap()
    );
}

#[test]
fn a_refused_change_records_nothing_and_install_clears_disabled() {
    if !common::require_tool("qemu-aarch64-static") {
        return;
    }
    let env = Env::new();
    let script = format!(
        "{DEBIAN_AARCH64}
$BIN disable linux/arm64 --json || echo exit=$?; echo ===
cp $BINFMTD_STATE_DIR/desired.toml $T/after-refusal 2>/dev/null || true
$BIN install linux/arm64 --force --json; echo ===
$BIN disable linux/arm64 --json; echo ===
cp $BINFMTD_STATE_DIR/desired.toml $T/after-disable
$BIN install linux/arm64 --json; echo ===
cat /proc/sys/fs/binfmt_misc/qemu-aarch64"
    );
    let out = env.sandbox_sh(&script);
    let text = stdout(&out);
    assert!(text.contains("exit=1"), "the refusal exits 1: {text}");
    let refused = std::fs::read_to_string(env.path("after-refusal")).unwrap_or_default();
    assert!(
        !refused.contains("qemu-aarch64"),
        "refusal recorded: {refused}"
    );
    let disabled = std::fs::read_to_string(env.path("after-disable")).unwrap();
    assert!(
        disabled.contains("disabled = [\"qemu-aarch64\"]"),
        "{disabled}"
    );
    let d = docs(&out);
    assert_eq!(handler(&d[3], "qemu-aarch64")["outcome"], "enabled");
    assert!(
        !desired(&env).contains("disabled = [\"qemu-aarch64\"]"),
        "{}",
        desired(&env)
    );
    assert!(
        text.trim_end().ends_with("flags: F") || text.contains("\nenabled\n"),
        "{text}"
    );
}

#[test]
fn defaults_register_without_the_credentials_flag() {
    if !common::require_tool("qemu-aarch64-static") {
        return;
    }
    let env = Env::new();
    let out = env.sandbox_sh("$BIN install linux/arm64 --json >/dev/null; cat /proc/sys/fs/binfmt_misc/qemu-aarch64; echo ===; $BIN install linux/arm64 --credentials --json >/dev/null; cat /proc/sys/fs/binfmt_misc/qemu-aarch64");
    let text = stdout(&out);
    let (plain, with_c) = text.split_once("===").unwrap();
    let flags = |s: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix("flags: "))
            .unwrap_or_default()
            .to_string()
    };
    assert!(!flags(plain).contains('C'), "{plain}");
    assert!(
        flags(with_c).contains('C'),
        "--credentials asks for C: {with_c}"
    );
}
