//! Runs a probe program: from an empty directory, chrooted where possible, with a timeout.

use crate::sys::exec::{wait_timeout, PreExec, Waited};
use serde::Serialize;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The exit code every probe is built to return.
pub const PROBE_EXIT_CODE: u8 = 42;

/// What happened when a probe was executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// Exited with the expected code: the ISA runs (natively or through binfmt_misc).
    Passed,
    /// Exited with another code.
    WrongExit { code: i32 },
    /// Killed by a signal (e.g. SIGSEGV, SIGILL inside the emulator).
    Signal { signal: i32, name: String },
    /// execve failed: ENOEXEC means no handler matched.
    ExecFailed { errno: i32, error: String },
    /// Did not finish in time and was killed.
    Timeout { seconds: u64 },
    /// No probe exists for this ISA.
    NoProbe,
    /// This identical entry, with the same interpreter file, passed earlier this boot.
    PassedEarlier,
}

impl ProbeOutcome {
    pub fn passed(&self) -> bool {
        matches!(self, ProbeOutcome::Passed | ProbeOutcome::PassedEarlier)
    }

    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            ProbeOutcome::Passed => "probe exited 42 as expected".into(),
            ProbeOutcome::WrongExit { code } => {
                format!("probe exited {code}, expected {PROBE_EXIT_CODE}")
            }
            ProbeOutcome::Signal { name, .. } => format!("probe was killed by {name}"),
            ProbeOutcome::ExecFailed { error, .. } => format!("exec of the probe failed: {error}"),
            ProbeOutcome::Timeout { seconds } => format!("probe did not exit within {seconds}s"),
            ProbeOutcome::NoProbe => "binfmtd has no probe program for this ISA".into(),
            ProbeOutcome::PassedEarlier => {
                "probe passed earlier this boot through this identical entry".into()
            }
        }
    }
}

/// How a probe is run.
#[derive(Debug, Clone, Copy)]
pub struct RunMode {
    /// chroot into the probe's empty directory (proves the F flag); needs CAP_SYS_CHROOT.
    pub chroot: bool,
    /// Give the probe its own user + mount namespace with an empty binfmt_misc instance,
    /// so that only the CPU itself can run it.
    pub empty_instance: bool,
    pub timeout: Duration,
}

/// Writes `bytes` as an executable `probe` into a fresh empty directory under `parent`.
pub fn stage(parent: &Path, bytes: &[u8]) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("binfmtd-probe-")
        .tempdir_in(parent)?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let path = dir.path().join("probe");
    std::fs::write(&path, bytes)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// What the exit status of a probe means.
fn classify(status: std::process::ExitStatus) -> ProbeOutcome {
    match (status.code(), status.signal()) {
        (Some(c), _) if c == i32::from(PROBE_EXIT_CODE) => ProbeOutcome::Passed,
        (Some(code), _) => ProbeOutcome::WrongExit { code },
        (None, Some(signal)) => ProbeOutcome::Signal {
            signal,
            name: signal_name(signal),
        },
        (None, None) => ProbeOutcome::WrongExit { code: -1 },
    }
}

fn exec_failed(e: &std::io::Error) -> ProbeOutcome {
    ProbeOutcome::ExecFailed {
        errno: e.raw_os_error().unwrap_or(0),
        error: e.to_string(),
    }
}

/// The child's set-up for `mode`: an empty private instance, a chroot into `dir`.
fn pre_exec(dir: &Path, mode: RunMode) -> std::io::Result<PreExec> {
    let c_string = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
    };
    Ok(PreExec {
        empty_binfmt_instance: mode
            .empty_instance
            .then(|| c_string(crate::kernel::DEFAULT_PATH.as_bytes()))
            .transpose()?,
        chroot: mode
            .chroot
            .then(|| c_string(dir.as_os_str().as_encoded_bytes()))
            .transpose()?,
    })
}

/// Executes `dir/probe` and classifies the result.
pub fn execute(dir: &Path, mode: RunMode) -> ProbeOutcome {
    let mut cmd = if mode.chroot {
        Command::new("/probe")
    } else {
        Command::new(dir.join("probe"))
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.env_clear();
    match pre_exec(dir, mode) {
        Ok(p) => p.install(&mut cmd),
        Err(e) => return exec_failed(&e),
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return exec_failed(&e),
    };
    match wait_timeout(&mut child, mode.timeout) {
        Ok(Waited::Exited(status)) => classify(status),
        Ok(Waited::TimedOut) => ProbeOutcome::Timeout {
            seconds: mode.timeout.as_secs(),
        },
        Err(e) => exec_failed(&e),
    }
}

/// Runs probes for several arches in parallel; results in input order.
pub fn probe_many(arches: &[String], parent: &Path, mode: RunMode) -> Vec<(String, ProbeOutcome)> {
    // Write and close every probe before any fork: a child forked while another thread
    // still holds a probe open for writing would make that probe's exec fail with ETXTBSY.
    let staged: Vec<Result<tempfile::TempDir, ProbeOutcome>> = arches
        .iter()
        .map(|a| {
            let bytes = super::exit_program(a, PROBE_EXIT_CODE).ok_or(ProbeOutcome::NoProbe)?;
            stage(parent, &bytes).map_err(|e| ProbeOutcome::ExecFailed {
                errno: e.raw_os_error().unwrap_or(0),
                error: format!("cannot write the probe under {}: {e}", parent.display()),
            })
        })
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = arches
            .iter()
            .zip(&staged)
            .map(|(a, st)| {
                s.spawn(move || {
                    let outcome = match st {
                        Ok(dir) => execute(dir.path(), mode),
                        Err(o) => o.clone(),
                    };
                    (a.clone(), outcome)
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(arches)
            .map(|(h, a)| {
                h.join().unwrap_or_else(|_| {
                    (
                        a.clone(),
                        ProbeOutcome::ExecFailed {
                            errno: 0,
                            error: "probe thread panicked".into(),
                        },
                    )
                })
            })
            .collect()
    })
}
