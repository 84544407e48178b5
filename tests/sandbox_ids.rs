//! `binfmtd sandbox` maps a full id range: as root the identity range, as a user the
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! subordinate ids of /etc/subuid and /etc/subgid (through newuidmap/newgidmap), else only the
//! caller's id with a note. Inside, a foreign (arm64, emulated) `setpriv` switches to a
//! non-root uid with supplementary groups, and a foreign `stat` sees files of several owners.
//! The user cases run as uid 1000 with stand-in /etc/subuid and /etc/subgid bind-mounted in a
//! private mount namespace; the host's files are not changed.

mod common;

use std::process::Command;

/// What every case runs inside the sandbox, chrooted into the arm64 root (emulated).
const INSIDE: &str = r#"cat /proc/self/uid_map
mount -t tmpfs tmpfs "$R/tmp"
touch "$R/tmp/a" "$R/tmp/b" && chown 1000:1000 "$R/tmp/a" && chown 2000:3000 "$R/tmp/b"
chroot "$R" /usr/bin/stat -c '%u:%g %n' /tmp/a /tmp/b
chroot "$R" /usr/bin/setpriv --reuid 1000 --regid 1000 --groups 2000,3000 /usr/bin/id
"#;

/// Runs the sandbox as root, or as uid 1000 with the given subuid/subgid text (`None`: empty).
fn run(as_user: bool, subids: Option<&str>) -> (String, String) {
    let root = common::arm64_root();
    let w = tempfile::tempdir().unwrap();
    let work = w.path();
    std::fs::write(work.join("inside.sh"), INSIDE).unwrap();
    std::fs::write(work.join("subids"), subids.unwrap_or("")).unwrap();
    std::fs::copy(common::binfmtd_bin(), work.join("binfmtd")).unwrap();
    let outer = r#"
chmod 755 "$W"; chmod 644 "$W/inside.sh" "$W/subids"
mkdir "$W/root" && mount --bind "$ROOT" "$W/root"
run="$W/binfmtd sandbox --platform linux/arm64 -- env R=$W/root sh -e $W/inside.sh"
if [ "$AS_USER" = 1 ]; then
  mount --bind "$W/subids" /etc/subuid && mount --bind "$W/subids" /etc/subgid
  mkdir "$W/tmp" && chmod 1777 "$W/tmp"
  exec setpriv --reuid 1000 --regid 1000 --clear-groups env TMPDIR="$W/tmp" HOME="$W/tmp" $run
fi
exec $run
"#;
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-ec", outer])
        .env("W", work)
        .env("ROOT", root)
        .env("AS_USER", if as_user { "1" } else { "0" })
        .env_remove("BINFMTD_STATE_DIR")
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("--- stdout\n{o}\n--- stderr\n{e}");
    (o, e)
}

fn root_ok() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        assert!(
            !common::in_ci(),
            "these tests need root (CI runs them as root)"
        );
        eprintln!("skipping: needs root to switch to uid 1000 and bind-mount /etc/subuid");
    }
    root && common::require_tool("qemu-aarch64-static") && common::require_tool("newuidmap")
}

#[test]
fn root_maps_the_identity_range() {
    if !root_ok() {
        return;
    }
    let (out, _) = run(false, None);
    assert!(out.contains("0          0 4294967295"), "{out}");
    assert!(
        out.contains("1000:1000 /tmp/a") && out.contains("2000:3000 /tmp/b"),
        "{out}"
    );
    assert!(
        out.contains("uid=1000 gid=1000 groups=1000,2000,3000"),
        "{out}"
    );
}

#[test]
fn a_user_maps_its_subordinate_ids() {
    if !root_ok() {
        return;
    }
    let (out, err) = run(true, Some("1000:200000:65536\n"));
    assert!(
        out.contains("0       1000          1") && out.contains("1     200000      65536"),
        "{out}"
    );
    assert!(
        out.contains("1000:1000 /tmp/a") && out.contains("2000:3000 /tmp/b"),
        "{out}"
    );
    assert!(
        out.contains("uid=1000 gid=1000 groups=1000,2000,3000"),
        "{out}"
    );
    assert!(!err.contains("note:"), "{err}");
}

#[test]
fn without_subordinate_ids_one_id_and_a_note() {
    if !root_ok() {
        return;
    }
    let (out, err) = run(true, None);
    assert!(out.contains("0       1000          1"), "{out}");
    assert!(
        err.contains("note: only your own user and group are mapped"),
        "{err}"
    );
    assert!(
        err.contains("/etc/subuid has no range for uid 1000"),
        "{err}"
    );
    // chown to an unmapped id fails there, as it does for a builder.
    assert!(
        err.contains("Invalid argument") || err.contains("Operation not permitted"),
        "{err}"
    );
}
