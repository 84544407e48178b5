//! Runs helper programs: set-up in the child before exec, and a wait bounded by a timeout.
//!
//! Children are waited for with a pidfd and poll(2) (Linux 5.3+), or, where pidfd_open is
//! unavailable, by a thread blocked in waitid(2); never by sleeping and polling.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a waited-for child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    Exited(ExitStatus),
    /// It outlived the timeout and was killed (and reaped).
    TimedOut,
}

/// Why a helper program gave no output.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot wait for {program}: {source}")]
    Wait {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{program} did not exit within {seconds}s and was killed; it may hang without a terminal or need arguments")]
    TimedOut { program: PathBuf, seconds: u64 },
    #[error("cannot read the output of {program}: {source}")]
    Read {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a helper printed, and how it exited.
#[derive(Debug, Clone)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Set-up the child does between fork and exec, in this order.
#[derive(Debug, Clone, Default)]
pub struct PreExec {
    /// Enter a new user + mount namespace and mount an empty binfmt_misc instance here.
    pub empty_binfmt_instance: Option<CString>,
    /// chroot into this directory, then chdir to `/`.
    pub chroot: Option<CString>,
}

impl PreExec {
    /// Makes `cmd` run this set-up in its child.
    pub fn install(self, cmd: &mut Command) {
        if self.empty_binfmt_instance.is_none() && self.chroot.is_none() {
            return;
        }
        // SAFETY: the closure runs in the forked child before exec and only makes raw
        // system calls (unshare, mount, chroot, chdir) on data prepared before the fork.
        unsafe {
            cmd.pre_exec(move || self.run_in_child());
        }
    }

    fn run_in_child(&self) -> io::Result<()> {
        if let Some(path) = &self.empty_binfmt_instance {
            super::ns::enter_empty_instance_raw(path)?;
        }
        if let Some(root) = &self.chroot {
            // SAFETY: plain system calls on NUL-terminated strings that outlive them.
            unsafe {
                if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

/// Waits for `child` at most `timeout`; past it the child is killed and reaped.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Waited> {
    match pidfd_open(child.id()) {
        Ok(fd) => wait_pidfd(child, &fd, timeout),
        Err(e) => {
            tracing::debug!("pidfd_open failed ({e}); waiting in a thread instead");
            wait_thread(child, timeout)
        }
    }
}

/// A pidfd for our child `pid` (Linux 5.3+).
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// poll(2) timeout in whole milliseconds, rounded up so that it never wakes early.
pub(crate) fn poll_millis(left: Duration) -> libc::c_int {
    libc::c_int::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX)
}

fn wait_pidfd(child: &mut Child, fd: &OwnedFd, timeout: Duration) -> io::Result<Waited> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return kill_and_reap(child);
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        match unsafe { libc::poll(&mut pfd, 1, poll_millis(left)) } {
            n if n > 0 => return child.wait().map(Waited::Exited),
            0 => continue,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// The fallback: a thread blocks in waitid(WNOWAIT), which leaves the child unreaped, so
/// its pid stays ours to kill until `Child::wait` reaps it here.
fn wait_thread(child: &mut Child, timeout: Duration) -> io::Result<Waited> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: siginfo_t is plain data; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: waitid on our own child with a valid siginfo_t to fill.
            let r =
                unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
            if r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
        let _ = tx.send(());
    });
    match rx.recv_timeout(timeout) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => child.wait().map(Waited::Exited),
        Err(mpsc::RecvTimeoutError::Timeout) => kill_and_reap(child),
    }
}

fn kill_and_reap(child: &mut Child) -> io::Result<Waited> {
    let _ = child.kill();
    child.wait()?;
    Ok(Waited::TimedOut)
}

/// Runs `program ARGS` with no stdin and returns what it printed once it exits, killing it
/// after `timeout`. Output is read after exit: meant for short answers such as versions.
pub fn capture(program: &Path, args: &[&str], timeout: Duration) -> Result<Captured, ExecError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ExecError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
    let status = match wait_timeout(&mut child, timeout) {
        Ok(Waited::Exited(status)) => status,
        Ok(Waited::TimedOut) => {
            return Err(ExecError::TimedOut {
                program: program.to_path_buf(),
                seconds: timeout.as_secs(),
            })
        }
        Err(source) => {
            return Err(ExecError::Wait {
                program: program.to_path_buf(),
                source,
            })
        }
    };
    let read = |pipe: Option<&mut dyn Read>| -> Result<String, ExecError> {
        let mut bytes = Vec::new();
        if let Some(p) = pipe {
            p.read_to_end(&mut bytes)
                .map_err(|source| ExecError::Read {
                    program: program.to_path_buf(),
                    source,
                })?;
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    Ok(Captured {
        status,
        stdout: read(child.stdout.as_mut().map(|p| p as &mut dyn Read))?,
        stderr: read(child.stderr.as_mut().map(|p| p as &mut dyn Read))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Child {
        Command::new("/bin/sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .spawn()
            .expect("/bin/sh starts")
    }

    type Waiter = fn(&mut Child, Duration) -> io::Result<Waited>;

    #[test]
    fn both_waiters_return_exit_status_or_kill_on_timeout() {
        let waiters: [(&str, Waiter); 2] = [("pidfd", wait_timeout), ("thread", wait_thread)];
        for (name, wait) in waiters {
            // (script, timeout, exit code or None for a timeout, at most this long)
            let table: [(&str, u64, Option<i32>, u64); 3] = [
                ("exit 7", 5000, Some(7), 4000),
                ("exec sleep 0.2", 5000, Some(0), 4000),
                ("exec sleep 30", 300, None, 4000),
            ];
            for (script, ms, code, most) in table {
                let start = Instant::now();
                let mut child = sh(script);
                let got = wait(&mut child, Duration::from_millis(ms)).expect("wait works");
                let took = start.elapsed();
                match code {
                    Some(c) => assert!(
                        matches!(got, Waited::Exited(s) if s.code() == Some(c)),
                        "{name} {script}: {got:?}"
                    ),
                    None => {
                        assert_eq!(got, Waited::TimedOut, "{name} {script}");
                        assert!(took >= Duration::from_millis(ms), "{name}: early {took:?}");
                        // Killed and reaped: nothing left to wait for.
                        assert!(child.try_wait().expect("try_wait").is_some());
                    }
                }
                assert!(
                    took < Duration::from_millis(most),
                    "{name} {script}: {took:?}"
                );
            }
        }
    }

    #[test]
    fn capture_reports_output_status_and_timeouts() {
        let t = Duration::from_secs(5);
        let out = capture(
            Path::new("/bin/sh"),
            &["-c", "echo out; echo err >&2; exit 3"],
            t,
        )
        .expect("sh runs");
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str()),
            ("out\n", "err\n")
        );
        assert_eq!(out.status.code(), Some(3));
        let slow = capture(
            Path::new("/bin/sh"),
            &["-c", "exec sleep 30"],
            Duration::from_millis(200),
        );
        assert!(matches!(slow, Err(ExecError::TimedOut { .. })), "{slow:?}");
        let missing = capture(Path::new("/nonexistent/helper"), &[], t);
        let msg = missing.expect_err("no such program").to_string();
        assert!(msg.contains("cannot start /nonexistent/helper"), "{msg}");
    }

    #[test]
    fn pre_exec_chroot_runs_in_the_child() {
        // chroot needs CAP_SYS_CHROOT; without it, the child's exec fails with EPERM.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "true"]);
        PreExec {
            empty_binfmt_instance: None,
            chroot: CString::new(dir.path().as_os_str().as_encoded_bytes()).ok(),
        }
        .install(&mut cmd);
        let err = cmd
            .spawn()
            .expect_err("nothing to run inside an empty root");
        let errno = err.raw_os_error();
        assert!(
            errno == Some(libc::ENOENT) || errno == Some(libc::EPERM),
            "{err}"
        );
    }
}
