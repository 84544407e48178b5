//! The systemd unit: `systemd-analyze verify` is clean, the exposure stays at 1.6 or below, and
//! each relaxation is needed on this kernel (reproduced with the same kernel mechanisms).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn unit() -> PathBuf {
    repo().join("systemd/binfmtd.service")
}

#[test]
fn exposure_is_at_most_1_6() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit())
        .output()
        .expect("systemd-analyze");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line: {stdout}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse {line:?}"));
    eprintln!("{line}");
    // 1.5 was the goal; RestrictNamespaces=user mnt (the native probes) costs the rest. The
    // unit's header states the figure; 2.0 is the hard limit.
    assert!(score <= 1.6, "exposure {score} > 1.6:\n{stdout}");
}

#[test]
fn verify_is_clean() {
    // verify checks that ExecStart exists: point it at a real executable in a copy.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit()).unwrap();
    let exe = std::env::current_exe().unwrap();
    let copy = text.replace("/usr/bin/binfmtd", &exe.display().to_string());
    assert_ne!(
        copy, text,
        "ExecStart=/usr/bin/binfmtd expected in the unit"
    );
    let path = dir.path().join("binfmtd.service");
    std::fs::write(&path, copy).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

fn sh_in_userns(script: &str, extra: &[&str]) -> String {
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount"])
        .args(extra)
        .args(["sh", "-c", script])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// ProtectKernelTunables=yes bind-mounts /proc/sys read-only recursively: that freezes the
/// binfmt_misc mount below it, and ReadWritePaths=/proc/sys/fs/binfmt_misc undoes it.
#[test]
fn protect_kernel_tunables_needs_the_binfmt_misc_rebind() {
    let text = std::fs::read_to_string(unit()).unwrap();
    assert!(
        text.contains("\nProtectKernelTunables=yes\n")
            && text.contains("\nReadWritePaths=-/proc/sys/fs/binfmt_misc\n")
    );
    let out = sh_in_userns(
        r"mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 1
        mount --rbind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && mount -o remount,bind,ro /proc/sys/fs/binfmt_misc
        echo ':t1:M::\x7fZZ::/bin/true:' > /proc/sys/fs/binfmt_misc/register 2>/dev/null && echo frozen-register-ok || echo frozen-register-refused
        mount --bind /proc/sys/fs/binfmt_misc /proc/sys/fs/binfmt_misc && mount -o remount,bind,rw /proc/sys/fs/binfmt_misc
        echo ':t2:M::\x7fYY::/bin/true:' > /proc/sys/fs/binfmt_misc/register && echo rebound-register-ok",
        &[],
    );
    assert!(out.contains("frozen-register-refused"), "{out}");
    assert!(out.contains("rebound-register-ok"), "{out}");
}

/// ProcSubset=pid mounts a /proc without /proc/sys: binfmt_misc would be unreachable.
#[test]
fn proc_subset_pid_hides_binfmt_misc() {
    let out = sh_in_userns(
        r"mkdir -p /tmp/.binfmtd-proc-subset-$$ && mount -t proc -o subset=pid proc /tmp/.binfmtd-proc-subset-$$ || exit 1
        test -e /tmp/.binfmtd-proc-subset-$$/sys && echo sys-visible || echo sys-hidden
        test -e /tmp/.binfmtd-proc-subset-$$/self && echo pids-visible
        umount /tmp/.binfmtd-proc-subset-$$; rmdir /tmp/.binfmtd-proc-subset-$$",
        &["--pid", "--fork"],
    );
    assert!(
        out.contains("sys-hidden") && out.contains("pids-visible"),
        "{out}"
    );
}

/// MemoryDenyWriteExecute is left off: qemu-user's JIT, which the daemon's verification
/// probes run, dies under the kernel's own memory-deny-write-execute (PR_SET_MDWE).
#[test]
fn memory_deny_write_execute_breaks_qemu_probes() {
    let qemu = std::path::Path::new("/usr/bin/qemu-aarch64-static");
    if !qemu.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "qemu-user-static is missing; install it"
        );
        eprintln!("skipped: no {}", qemu.display());
        return;
    }
    let run = |mdwe: bool| {
        // A real guest program is needed: `--version` does not start the JIT.
        let bin = binfmtd::probe::exit_program("aarch64", 42).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe");
        std::fs::write(&path, bin).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut cmd = Command::new(qemu);
        cmd.arg(&path);
        if mdwe {
            // SAFETY: prctl in the forked child before exec, no allocation.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                    const PR_SET_MDWE: libc::c_int = 65;
                    const PR_MDWE_REFUSE_EXEC_GAIN: libc::c_ulong = 1;
                    if libc::prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.output().unwrap()
    };
    assert_eq!(run(false).status.code(), Some(42));
    let denied = run(true);
    assert_ne!(denied.status.code(), Some(42));
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(err.contains("Permission denied"), "{err}");
}
