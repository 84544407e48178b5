//! `binfmtd export` replayed by the real tools, in private binfmt_misc instances: systemd-binfmt
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! must register byte-identical entries from the binfmt.d form, Debian's `update-binfmts
//! --import` the same entries from the binfmt-support form, and `status` must then name the
//! binfmt-support package by the exact line.

mod common;

/// Prints every entry file as `NAME` then its content, in readdir order (newest first).
const DUMP: &str = r#"dump() { for f in $(ls -U /proc/sys/fs/binfmt_misc); do case $f in register|status) ;; *) echo "== $f"; cat "/proc/sys/fs/binfmt_misc/$f";; esac; done; }"#;

fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!("<<{name}>>\n"))
        .unwrap_or_else(|| panic!("no section {name} in {text}"));
    let rest = &text[start + name.len() + 5..];
    &rest[..rest.find("<<").unwrap_or(rest.len())]
}

#[test]
fn systemd_binfmt_replays_the_binfmt_d_export_byte_for_byte() {
    if !common::require_tool("/lib/systemd/systemd-binfmt")
        || !common::require_tool("qemu-aarch64-static")
    {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // Three entries with different flag sets, one disabled, then flush and replay.
    let script = format!(
        r#"{DUMP}
export BINFMTD_STATE_DIR=$T/state BINFMTD_BINFMT_D_DIR=$T/binfmt.d
$BIN install linux/arm64 >/dev/null
$BIN install riscv64 --flags POCF >/dev/null
$BIN install s390x --flags OF >/dev/null
$BIN disable s390x >/dev/null
echo "<<before>>"; dump
$BIN export --format binfmt.d > $T/export.conf
echo -1 > /proc/sys/fs/binfmt_misc/status
/lib/systemd/systemd-binfmt $T/export.conf
echo 0 > /proc/sys/fs/binfmt_misc/qemu-s390x
echo "<<after>>"; dump
echo "<<file>>"; cat $T/export.conf
echo "<<end>>"
"#
    );
    let out = common::private_instance_sh(&script, &[("T", t.path())]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let before = section(&text, "before");
    assert_eq!(before.matches("== ").count(), 3, "{before}");
    assert!(before.contains("flags: POCF"), "{before}");
    assert_eq!(section(&text, "after"), before, "replay differs");
    let file = section(&text, "file");
    assert!(file.contains(":qemu-riscv64:M::"), "{file}");
    // The export says the disabled entry comes back enabled (systemd-binfmt cannot disable).
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("qemu-s390x: disabled in the kernel"), "{err}");
}

fn import_script(dump: bool) -> String {
    format!(
        r#"{DUMP}
export BINFMTD_STATE_DIR=$T/state BINFMTD_BINFMT_D_DIR=$T/binfmt.d
mount -t tmpfs tmpfs /var/lib   # binfmt-support's database, private to this namespace
mkdir /var/lib/binfmts
$BIN install linux/arm64,riscv64 >/dev/null
$BIN install s390x --flags PCF >/dev/null
echo "<<before>>"; {d}
mkdir $T/import
$BIN export --format binfmt-support --dir $T/import
echo -1 > /proc/sys/fs/binfmt_misc/status
$TOOLS/usr/sbin/update-binfmts --importdir $T/import --import
echo "<<after>>"; {d}
echo "<<status>>"; BINFMTD_STATE_DIR=$T/fresh $BIN status --json
echo "<<fex>>"
$BIN install riscv64 --flags POF --force >/dev/null
$BIN export --format binfmt-support --json || echo "exit=$?"
echo "<<end>>"
"#,
        d = if dump { "dump | sort" } else { "true" }
    )
}

#[test]
fn update_binfmts_imports_the_binfmt_support_export() {
    if !common::require_tool("qemu-aarch64-static") {
        return;
    }
    let tools = common::debian_tools();
    let t = tempfile::tempdir().unwrap();
    let out =
        common::private_instance_sh(&import_script(true), &[("T", t.path()), ("TOOLS", tools)]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // update-binfmts registers in its own order; every entry file is the same.
    let before = section(&text, "before");
    assert!(before.contains("flags: POCF"), "{before}");
    assert_eq!(section(&text, "after"), before);
    let status: serde_json::Value = serde_json::from_str(section(&text, "status")).unwrap();
    for e in status["entries"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        assert_eq!(
            e["owner"],
            format!("binfmt-support package binfmtd (/var/lib/binfmts/{name})"),
            "{e}"
        );
    }
    // POF cannot be said in binfmt-support: exit 1, the entry named with the reason.
    let fex = section(&text, "fex");
    assert!(fex.contains("exit=1"), "{fex}");
    let doc: serde_json::Value = serde_json::from_str(&fex[..fex.rfind('}').unwrap() + 1]).unwrap();
    let bad: Vec<_> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["error"].is_null())
        .collect();
    assert_eq!(bad.len(), 1, "{doc}");
    assert_eq!(bad[0]["name"], "qemu-riscv64");
    assert!(bad[0]["error"].as_str().unwrap().contains("O without C"));
    assert_eq!(doc["ok"], false);
}

#[test]
fn status_names_no_package_when_the_line_differs() {
    if !common::require_tool("qemu-aarch64-static") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let script = r#"
export BINFMTD_STATE_DIR=$T/state BINFMTD_BINFMT_D_DIR=$T/binfmt.d BINFMTD_BINFMTS_ADMINDIR=$T/admin
mkdir $T/admin
$BIN install linux/arm64 >/dev/null
# A record with the same name and magic but another flag set is not this entry's.
printf 'qemu-user-static\nmagic\n0\n\\x7fELF\n\n/usr/bin/qemu-aarch64-static\n\nno\nyes\nyes\n' > $T/admin/qemu-aarch64
BINFMTD_STATE_DIR=$T/fresh $BIN status --json
"#;
    let out = common::private_instance_sh(script, &[("T", t.path())]);
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &status["entries"][0];
    assert_eq!(e["name"], "qemu-aarch64");
    assert_eq!(e["owner"], "unknown", "{e}");
}
