//! Runs many probes with one set-up: a single helper process enters the empty private
//! instance or the chroot once, then starts every probe with `posix_spawn` (a plain
//! execve: no shell fallback on ENOEXEC), so each probe costs one exec and nothing more.

use super::run::{ProbeOutcome, PROBE_EXIT_CODE};
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// Where the probes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// In the current binfmt_misc instance, from the probes' directory.
    Direct,
    /// In a new user + mount namespace with an empty binfmt_misc instance: only the CPU
    /// itself can run a probe there.
    EmptyInstance,
    /// chrooted into the probes' directory (nothing else in it): a handler can run a probe
    /// only if its interpreter was opened at registration (the F flag).
    Chroot,
}

/// One record from the helper: (probe index, what happened, value). Small enough for an
/// atomic pipe write.
pub(super) const RECORD: usize = 12;
pub(super) const KIND_EXITED: u32 = 1;
pub(super) const KIND_SPAWN_FAILED: u32 = 2;
pub(super) const KIND_SETUP_FAILED: u32 = 3;

/// Runs the probe of every arch once, all under one set-up; results in input order.
pub fn run(
    arches: &[String],
    parent: &Path,
    setup: Setup,
    timeout: Duration,
) -> Vec<(String, ProbeOutcome)> {
    let mut outcomes: Vec<Option<ProbeOutcome>> = vec![None; arches.len()];
    let dir = match stage(arches, parent, &mut outcomes) {
        Ok(dir) => dir,
        Err(e) => {
            let failed = ProbeOutcome::ExecFailed {
                errno: e.raw_os_error().unwrap_or(0),
                error: format!("cannot write the probes under {}: {e}", parent.display()),
            };
            return arches.iter().map(|a| (a.clone(), failed.clone())).collect();
        }
    };
    let todo: Vec<usize> = (0..arches.len())
        .filter(|i| outcomes[*i].is_none())
        .collect();
    for part in in_parallel(arches, &todo, dir.path(), setup, timeout) {
        for (i, o) in part.into_iter().enumerate() {
            if o.is_some() {
                outcomes[i] = o;
            }
        }
    }
    arches
        .iter()
        .zip(outcomes)
        .map(|(a, o)| (a.clone(), o.unwrap_or(ProbeOutcome::NoProbe)))
        .collect()
}

/// One helper per core, each with its share of the probes: within a helper, each probe's
/// exec (or its ENOEXEC) waits for the one before.
fn in_parallel(
    arches: &[String],
    todo: &[usize],
    dir: &Path,
    setup: Setup,
    timeout: Duration,
) -> Vec<Vec<Option<ProbeOutcome>>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let helpers = cores.min(todo.len());
    let groups: Vec<Vec<usize>> = (0..helpers)
        .map(|h| todo.iter().copied().skip(h).step_by(helpers).collect())
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter()
            .map(|group| {
                s.spawn(move || {
                    let mut out = vec![None; arches.len()];
                    match Plan::new(arches, group, dir, setup) {
                        Ok(plan) => plan.execute(timeout, &mut out),
                        Err(e) => fill(&mut out, group, exec_failed(&e)),
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

pub(super) fn fill(outcomes: &mut [Option<ProbeOutcome>], todo: &[usize], o: ProbeOutcome) {
    for i in todo {
        if outcomes[*i].is_none() {
            outcomes[*i] = Some(o.clone());
        }
    }
}

pub(super) fn exec_failed(e: &std::io::Error) -> ProbeOutcome {
    ProbeOutcome::ExecFailed {
        errno: e.raw_os_error().unwrap_or(0),
        error: e.to_string(),
    }
}

/// Writes every probe (`probe-ARCH`) into one fresh directory; arches without a probe get
/// their outcome now. Every file is closed before any fork (an open one would fail its
/// exec with ETXTBSY).
fn stage(
    arches: &[String],
    parent: &Path,
    outcomes: &mut [Option<ProbeOutcome>],
) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("binfmtd-probes-")
        .tempdir_in(parent)?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    for (i, arch) in arches.iter().enumerate() {
        let Some(bytes) = super::exit_program(arch, PROBE_EXIT_CODE) else {
            outcomes[i] = Some(ProbeOutcome::NoProbe);
            continue;
        };
        let path = dir.path().join(file_name(arch));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&path)?;
        std::io::Write::write_all(&mut f, &bytes)?;
    }
    Ok(dir)
}

fn file_name(arch: &str) -> String {
    format!("probe-{arch}")
}

/// Everything the helper needs, prepared before the fork (the child allocates nothing).
struct Plan {
    todo: Vec<usize>,
    paths: Vec<CString>,
    setup: Setup,
    dir: CString,
    instance: CString,
}

impl Plan {
    fn new(arches: &[String], todo: &[usize], dir: &Path, setup: Setup) -> std::io::Result<Plan> {
        let c = |bytes: Vec<u8>| {
            CString::new(bytes).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
        };
        let paths = todo
            .iter()
            .map(|i| {
                let name = file_name(&arches[*i]);
                match setup {
                    Setup::Chroot => c(format!("/{name}").into_bytes()),
                    _ => c(dir.join(name).into_os_string().into_encoded_bytes()),
                }
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Plan {
            todo: todo.to_vec(),
            paths,
            setup,
            dir: c(dir.as_os_str().as_encoded_bytes().to_vec())?,
            instance: c(crate::kernel::DEFAULT_PATH.as_bytes().to_vec())?,
        })
    }

    /// Forks the helper, reads its records until all are in or the time is up.
    fn execute(self, timeout: Duration, outcomes: &mut [Option<ProbeOutcome>]) {
        let (read, write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => return fill(outcomes, &self.todo, exec_failed(&e.into())),
        };
        let mut pids: Vec<libc::pid_t> = vec![0; self.paths.len()];
        // SAFETY: the child only makes system calls on data prepared above, then _exits.
        let helper = unsafe { libc::fork() };
        if helper < 0 {
            let e = std::io::Error::last_os_error();
            return fill(outcomes, &self.todo, exec_failed(&e));
        }
        if helper == 0 {
            drop(read);
            self.helper(write.as_raw_fd(), &mut pids);
        }
        drop(write);
        collect(read, helper, timeout, &self.todo, outcomes);
    }

    /// In the helper: set up once, start every probe, report each as it ends.
    fn helper(&self, out: libc::c_int, pids: &mut [libc::pid_t]) -> ! {
        // SAFETY: only async-signal-safe system calls follow, on data prepared before fork.
        unsafe {
            libc::setpgid(0, 0);
            if let Err(e) = self.enter() {
                report(
                    out,
                    0,
                    KIND_SETUP_FAILED,
                    e.raw_os_error().unwrap_or(libc::EIO),
                );
                libc::_exit(1);
            }
            let argv0 = [std::ptr::null_mut::<libc::c_char>(); 2];
            let envp = [std::ptr::null_mut::<libc::c_char>(); 1];
            let mut running = 0;
            for (k, path) in self.paths.iter().enumerate() {
                // A few at a time: many emulators starting at once on few cores only
                // contend for memory (page-fault and LRU locks) and finish later.
                if running >= IN_FLIGHT {
                    running -= reap_one(out, pids);
                }
                let mut argv = argv0;
                argv[0] = path.as_ptr().cast_mut();
                let mut pid: libc::pid_t = 0;
                let rc = libc::posix_spawn(
                    &mut pid,
                    path.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                );
                if rc != 0 {
                    report(out, k, KIND_SPAWN_FAILED, rc);
                } else {
                    pids[k] = pid;
                    running += 1;
                }
            }
            while reap_one(out, pids) == 1 {}
            libc::_exit(0);
        }
    }

    /// The one set-up in the helper.
    fn enter(&self) -> std::io::Result<()> {
        match self.setup {
            Setup::Direct => Ok(()),
            Setup::EmptyInstance => crate::sys::ns::enter_empty_instance_raw(&self.instance),
            // SAFETY: plain system calls on NUL-terminated strings that outlive them.
            Setup::Chroot => unsafe {
                if libc::chroot(self.dir.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            },
        }
    }
}

/// In the parent: reads records until the helper is done or the deadline passes (then
/// the helper's process group — the helper and every probe — is killed).
pub(super) fn collect(
    read: OwnedFd,
    helper: libc::pid_t,
    timeout: Duration,
    todo: &[usize],
    outcomes: &mut [Option<ProbeOutcome>],
) {
    let deadline = Instant::now() + timeout;
    let mut file = std::fs::File::from(read);
    let mut buf = [0u8; RECORD];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !readable(&file, left) {
            // SAFETY: signals the helper's own process group, then reaps the helper.
            unsafe {
                libc::kill(-helper, libc::SIGKILL);
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
            Ok(()) => record(&buf, todo, outcomes),
            Err(_) => break,
        }
    }
    let mut status = 0;
    // SAFETY: reaps our own child.
    unsafe {
        libc::waitpid(helper, &mut status, 0);
    }
    let lost = ProbeOutcome::ExecFailed {
        errno: libc::ECHILD,
        error: "the probe helper ended without reporting this probe".into(),
    };
    fill(outcomes, todo, lost);
}

fn record(buf: &[u8; RECORD], todo: &[usize], outcomes: &mut [Option<ProbeOutcome>]) {
    let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let (k, kind, value) = (word(0) as usize, word(4), word(8) as i32);
    let outcome = match kind {
        KIND_EXITED => classify(value),
        _ => exec_failed(&std::io::Error::from_raw_os_error(value)),
    };
    if kind == KIND_SETUP_FAILED {
        return fill(outcomes, todo, outcome);
    }
    if let Some(i) = todo.get(k) {
        outcomes[*i] = Some(outcome);
    }
}

/// Probes one helper runs at once.
const IN_FLIGHT: usize = 2;

/// Waits for any probe of this helper and reports it; 0 when none is left.
unsafe fn reap_one(out: libc::c_int, pids: &[libc::pid_t]) -> usize {
    let mut status: libc::c_int = 0;
    // SAFETY: waits for a child of this (single-threaded) helper.
    let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
    if pid < 0 {
        return 0;
    }
    if let Some(k) = pids.iter().position(|p| *p == pid) {
        // SAFETY: as in report.
        unsafe { report(out, k, KIND_EXITED, status) };
    }
    1
}

/// Writes one record (helper side; a single write of 12 bytes is atomic on a pipe).
pub(super) unsafe fn report(out: libc::c_int, k: usize, kind: u32, value: i32) {
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
pub(super) fn readable(file: &std::fs::File, left: Duration) -> bool {
    let mut fds = [libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    loop {
        // SAFETY: polls one descriptor we own.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return n > 0;
        }
    }
}

/// What a wait status means.
pub(super) fn classify(status: libc::c_int) -> ProbeOutcome {
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

    #[test]
    fn direct_probes_answer_native_and_foreign_and_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let native =
            crate::host::detect::qemu_arch_of_uname(std::env::consts::ARCH).unwrap_or("x86_64");
        // A big-endian ISA no CPU this runs on executes, and no handler takes it here unless
        // one is registered; either way the answer is an outcome, never a shell's error.
        let arches = vec![native.to_string(), "no-such-isa".to_string()];
        let got = run(&arches, dir.path(), Setup::Direct, Duration::from_secs(10));
        assert_eq!(got[0], (native.to_string(), ProbeOutcome::Passed));
        assert_eq!(got[1], ("no-such-isa".to_string(), ProbeOutcome::NoProbe));
    }
}
