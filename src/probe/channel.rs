//! The pipe between a probe helper and binfmtd: fixed-size records written by the helper
//! (async-signal-safe), read by binfmtd under one deadline; wait statuses as outcomes.

use super::run::{ProbeOutcome, PROBE_EXIT_CODE};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// One record from the helper: (probe index, what happened, value). Small enough for an
/// atomic pipe write.
pub const RECORD: usize = 12;
pub const KIND_EXITED: u32 = 1;
pub const KIND_SPAWN_FAILED: u32 = 2;
pub const KIND_SETUP_FAILED: u32 = 3;

pub fn fill(outcomes: &mut [Option<ProbeOutcome>], todo: &[usize], o: ProbeOutcome) {
    for i in todo {
        if outcomes[*i].is_none() {
            outcomes[*i] = Some(o.clone());
        }
    }
}

pub fn exec_failed(e: &std::io::Error) -> ProbeOutcome {
    ProbeOutcome::ExecFailed {
        errno: e.raw_os_error().unwrap_or(0),
        error: e.to_string(),
    }
}

/// In the parent: reads records until the helpers are done or the deadline passes (then
/// each helper's process group — the helper and its probes — is killed).
pub fn collect(
    read: OwnedFd,
    helpers: &[libc::pid_t],
    timeout: Duration,
    todo: &[usize],
    outcomes: &mut [Option<ProbeOutcome>],
) -> bool {
    let mut setup_failed = false;
    let deadline = Instant::now() + timeout;
    let mut file = std::fs::File::from(read);
    let mut buf = [0u8; RECORD];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !readable(&file, left) {
            for helper in helpers {
                // SAFETY: signals a helper's own process group; it is reaped below.
                unsafe {
                    libc::kill(-helper, libc::SIGKILL);
                }
            }
            fill(
                outcomes,
                todo,
                ProbeOutcome::Timeout {
                    seconds: timeout.as_secs(),
                },
            );
            break;
        }
        match file.read_exact(&mut buf) {
            Ok(()) => setup_failed |= record(&buf, todo, outcomes),
            Err(_) => break,
        }
    }
    for helper in helpers {
        let mut status = 0;
        // SAFETY: reaps our own child.
        unsafe {
            libc::waitpid(*helper, &mut status, 0);
        }
    }
    let lost = ProbeOutcome::ExecFailed {
        errno: libc::ECHILD,
        error: "the probe helper ended without reporting this probe".into(),
    };
    fill(outcomes, todo, lost);
    setup_failed
}

/// Takes one record; true when it says the helper's set-up failed.
fn record(buf: &[u8; RECORD], todo: &[usize], outcomes: &mut [Option<ProbeOutcome>]) -> bool {
    let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let (k, kind, value) = (word(0) as usize, word(4), word(8) as i32);
    let outcome = outcome_of(kind, value);
    if kind == KIND_SETUP_FAILED {
        fill(outcomes, todo, outcome);
        return true;
    }
    if let Some(i) = todo.get(k) {
        outcomes[*i] = Some(outcome);
    }
    false
}

/// What a record of `kind` with `value` (wait status or errno) says about its probe.
pub fn outcome_of(kind: u32, value: i32) -> ProbeOutcome {
    match kind {
        KIND_EXITED => classify(value),
        _ => exec_failed(&std::io::Error::from_raw_os_error(value)),
    }
}

/// Writes one record (helper side; a single write of 12 bytes is atomic on a pipe).
pub unsafe fn report(out: libc::c_int, k: usize, kind: u32, value: i32) {
    let mut buf = [0u8; RECORD];
    buf[..4].copy_from_slice(&(k as u32).to_ne_bytes());
    buf[4..8].copy_from_slice(&kind.to_ne_bytes());
    buf[8..].copy_from_slice(&value.to_ne_bytes());
    // SAFETY: writes a stack buffer to a descriptor the helper owns.
    unsafe {
        libc::write(out, buf.as_ptr().cast(), RECORD);
    }
}

/// Waits until the pipe has data (or was closed) for at most `left`.
pub fn readable(file: &std::fs::File, left: Duration) -> bool {
    let mut fds = [libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    let ms = crate::sys::exec::poll_millis(left);
    loop {
        // SAFETY: polls one descriptor we own.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return n > 0;
        }
    }
}

/// What a wait status means.
pub fn classify(status: libc::c_int) -> ProbeOutcome {
    if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        if code == i32::from(PROBE_EXIT_CODE) {
            ProbeOutcome::Passed
        } else {
            ProbeOutcome::WrongExit { code }
        }
    } else if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        ProbeOutcome::Signal {
            signal,
            name: super::run::signal_name(signal),
        }
    } else {
        ProbeOutcome::WrongExit { code: -1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_table() {
        let exited = |c: i32| c << 8;
        let cases = [
            (exited(42), ProbeOutcome::Passed),
            (exited(255), ProbeOutcome::WrongExit { code: 255 }),
            (
                libc::SIGSEGV,
                ProbeOutcome::Signal {
                    signal: libc::SIGSEGV,
                    name: "SIGSEGV".into(),
                },
            ),
        ];
        for (status, want) in cases {
            assert_eq!(classify(status), want, "{status:#x}");
        }
    }
}
