//! Native-ISA probes at the cost of one exec each: a helper tries the probes one after
//! another; a probe the CPU cannot run fails its exec with ENOEXEC and costs nothing more,
//! and only a probe that really runs becomes a process of its own.
//!
//! The probes are memfds (nothing written to disk, nothing to clean up), or files in a
//! temporary directory where memfds cannot be executed (`vm.memfd_noexec`, old kernels).

use super::channel::{self, KIND_EXITED, KIND_SETUP_FAILED, KIND_SPAWN_FAILED};
use super::run::{ProbeOutcome, PROBE_EXIT_CODE};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Where the probes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In the current binfmt_misc instance (the caller checked that no entry takes them).
    Direct,
    /// In a new user + mount namespace with an empty binfmt_misc instance.
    EmptyInstance,
}

/// A probe as the helper executes it.
enum Target {
    /// A memfd, executed with `execveat(fd, "", AT_EMPTY_PATH)`.
    Memfd(OwnedFd),
    /// A file, executed by path.
    File(CString),
}

/// Runs the probe of every arch once under `place`; results in input order. Arches without
/// a probe get [`ProbeOutcome::NoProbe`].
pub fn run(arches: &[String], place: Place, timeout: Duration) -> Vec<(String, ProbeOutcome)> {
    let mut outcomes: Vec<Option<ProbeOutcome>> = vec![None; arches.len()];
    let programs: Vec<Option<Vec<u8>>> = arches
        .iter()
        .map(|a| super::exit_program(a, PROBE_EXIT_CODE))
        .collect();
    let todo: Vec<usize> = (0..arches.len())
        .filter(|i| programs[*i].is_some())
        .collect();
    if todo.is_empty() {
        return arches
            .iter()
            .map(|a| (a.clone(), ProbeOutcome::NoProbe))
            .collect();
    }
    let bytes: Vec<&[u8]> = todo
        .iter()
        .filter_map(|i| programs[*i].as_deref())
        .collect();
    // Kept alive until the helper is done: the files' directory, when memfds fail.
    let mut _dir = None;
    let targets = match memfds(&bytes) {
        Ok(t) => Ok(t),
        Err(_) => files(&bytes, &mut _dir),
    };
    match targets {
        Ok(targets) => execute(&targets, &todo, place, timeout, &mut outcomes),
        Err(e) => channel::fill(&mut outcomes, &todo, channel::exec_failed(&e)),
    }
    arches
        .iter()
        .zip(outcomes)
        .map(|(a, o)| (a.clone(), o.unwrap_or(ProbeOutcome::NoProbe)))
        .collect()
}

/// One executable memfd per probe.
fn memfds(programs: &[&[u8]]) -> std::io::Result<Vec<Target>> {
    programs
        .iter()
        .map(|bytes| {
            let fd = memfd()?;
            let mut file = std::fs::File::from(fd);
            std::io::Write::write_all(&mut file, bytes)?;
            Ok(Target::Memfd(OwnedFd::from(file)))
        })
        .collect()
}

/// A close-on-exec memfd that may be executed: `MFD_EXEC` where the kernel knows it (6.3+,
/// where `vm.memfd_noexec` may otherwise seal it), plain before.
fn memfd() -> std::io::Result<OwnedFd> {
    for flags in [libc::MFD_CLOEXEC | libc::MFD_EXEC, libc::MFD_CLOEXEC] {
        // SAFETY: a NUL-terminated name; the returned descriptor is owned below.
        let fd = unsafe { libc::memfd_create(c"binfmtd-probe".as_ptr(), flags) };
        if fd >= 0 {
            // SAFETY: a fresh descriptor nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// The probes as files in a fresh temporary directory (closed before any fork: an open one
/// would fail its exec with ETXTBSY).
fn files(programs: &[&[u8]], dir: &mut Option<tempfile::TempDir>) -> std::io::Result<Vec<Target>> {
    let tmp = super::batch::probe_dir(&std::env::temp_dir())?;
    let targets = programs
        .iter()
        .enumerate()
        .map(|(k, bytes)| {
            let path = tmp.path().join(format!("probe-{k}"));
            super::batch::write_probe(&path, bytes)?;
            CString::new(path.into_os_string().into_encoded_bytes())
                .map(Target::File)
                .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    *dir = Some(tmp);
    Ok(targets)
}

/// What the sweeping child and its parent share (the child runs in the parent's memory,
/// whose thread is suspended meanwhile, as with vfork).
#[repr(C)]
struct Sweep {
    targets: *const Target,
    count: usize,
    /// The first probe this sweep tries.
    start: usize,
    /// The probe being tried; `count` once every remaining one failed its exec.
    cursor: usize,
    /// errno of each failed exec (0: not tried or not failed).
    errors: *mut i32,
    argv: [*const libc::c_char; 2],
    envp: [*const libc::c_char; 1],
    /// Signals binfmtd handles: the child puts them back to their defaults (its own copy of
    /// the handlers) before it execs anything.
    handled: [libc::c_int; 64],
    handled_count: usize,
    /// The signal mask the probes start with.
    mask: libc::sigset_t,
}

impl Sweep {
    fn new(targets: &[Target], errors: &mut [i32]) -> Sweep {
        // SAFETY: sigset_t and sigaction are plain C structures, initialised by the calls.
        unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut mask);
            let mut handled = [0; 64];
            let mut handled_count = 0;
            for sig in 1..libc::SIGRTMAX().min(64) {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction != libc::SIG_DFL
                    && old.sa_sigaction != libc::SIG_IGN
                {
                    handled[handled_count] = sig;
                    handled_count += 1;
                }
            }
            Sweep {
                targets: targets.as_ptr(),
                count: targets.len(),
                start: 0,
                cursor: 0,
                errors: errors.as_mut_ptr(),
                argv: [c"binfmtd-probe".as_ptr(), std::ptr::null()],
                envp: [std::ptr::null()],
                handled,
                handled_count,
                mask,
            }
        }
    }
}

/// Stack of the sweeping child: it only makes system calls.
const STACK: usize = 64 * 1024;

/// What became of one probe (same kinds as the helpers' records).
type Report<'a> = &'a mut dyn FnMut(usize, u32, i32);

/// Runs the probes: directly from this thread, or through a helper in an empty instance.
fn execute(
    targets: &[Target],
    todo: &[usize],
    place: Place,
    timeout: Duration,
    outcomes: &mut [Option<ProbeOutcome>],
) {
    let mut errors = vec![0i32; targets.len()];
    let mut stack = vec![0u8; STACK];
    let mut sweep = Sweep::new(targets, &mut errors);
    if place == Place::Direct {
        let deadline = Instant::now() + timeout;
        let mut report = |k: usize, kind: u32, value: i32| {
            let outcome = match kind {
                KIND_TIMEOUT => ProbeOutcome::Timeout {
                    seconds: timeout.as_secs(),
                },
                _ => channel::outcome_of(kind, value),
            };
            match (kind, todo.get(k)) {
                (KIND_SETUP_FAILED, _) => channel::fill(outcomes, todo, outcome),
                (_, Some(i)) => outcomes[*i] = Some(outcome),
                _ => {}
            }
        };
        let mut wait = |pid| wait_until(pid, deadline);
        // SAFETY: `sweep` points at live targets and errors for the whole call.
        unsafe { sweep_all(&mut sweep, &mut stack, &mut wait, &mut report) };
        return;
    }
    let (read, write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return channel::fill(outcomes, todo, channel::exec_failed(&e.into())),
    };
    let instance = CString::new(crate::kernel::DEFAULT_PATH).unwrap_or_default();
    // SAFETY: the child only makes system calls on data prepared above, then _exits.
    let helper = unsafe { libc::fork() };
    if helper < 0 {
        let e = std::io::Error::last_os_error();
        return channel::fill(outcomes, todo, channel::exec_failed(&e));
    }
    if helper == 0 {
        drop(read);
        // SAFETY: in the single-threaded child of fork, on memory prepared before it.
        unsafe { helper_main(&mut sweep, &mut stack, &instance, write.as_raw_fd()) };
    }
    drop(write);
    channel::collect(read, &[helper], timeout, todo, outcomes);
}

/// In the helper: enter an empty private instance, sweep, report each answer on the pipe.
///
/// # Safety
/// Only in the single-threaded child of fork; `sweep` points at live targets and errors.
unsafe fn helper_main(
    sweep: &mut Sweep,
    stack: &mut [u8],
    instance: &std::ffi::CStr,
    out: libc::c_int,
) -> ! {
    // SAFETY: async-signal-safe system calls on memory prepared before fork.
    unsafe {
        libc::setpgid(0, 0);
        if let Err(e) = crate::sys::ns::enter_empty_instance_raw(instance) {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            channel::report(out, 0, KIND_SETUP_FAILED, errno);
            libc::_exit(1);
        }
        let mut wait = |pid| {
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            Waited::Exited(status)
        };
        let mut report = |k, kind, value| channel::report(out, k, kind, value);
        sweep_all(sweep, stack, &mut wait, &mut report);
        libc::_exit(0);
    }
}

/// How a probe that ran ended.
enum Waited {
    Exited(libc::c_int),
    TimedOut,
}

/// Record kind of this module: the probe ran past the deadline and was killed.
const KIND_TIMEOUT: u32 = 100;

/// Sweeps until every probe has an answer. All signals are blocked meanwhile in the calling
/// thread (the child, in its memory, must not run its handlers); the child restores them.
///
/// # Safety
/// `sweep` points at live targets and errors; only system calls in the child.
unsafe fn sweep_all(
    sweep: &mut Sweep,
    stack: &mut [u8],
    wait: &mut dyn FnMut(libc::pid_t) -> Waited,
    report: Report<'_>,
) {
    // SAFETY: signal masks on initialised sets; clone with a stack we own; the child only
    // makes system calls (see `sweeper`).
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut before);
        // The stack grows down from its end, 16-byte aligned as the ABI wants.
        let end = stack.as_mut_ptr().add(stack.len());
        let top = end.sub(end as usize % 16).cast::<libc::c_void>();
        while sweep.start < sweep.count {
            let arg = std::ptr::from_mut(sweep).cast::<libc::c_void>();
            let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
            let pid = libc::clone(sweeper, top, flags, arg);
            if pid < 0 {
                let e = std::io::Error::last_os_error();
                report(0, KIND_SETUP_FAILED, e.raw_os_error().unwrap_or(libc::EIO));
                break;
            }
            let waited = wait(pid);
            let cursor = std::ptr::read_volatile(&sweep.cursor);
            for k in sweep.start..cursor.min(sweep.count) {
                report(k, KIND_SPAWN_FAILED, *sweep.errors.add(k));
            }
            if cursor < sweep.count {
                // The exec of `cursor` succeeded: this was that probe's process.
                match waited {
                    Waited::Exited(status) => report(cursor, KIND_EXITED, status),
                    Waited::TimedOut => report(cursor, KIND_TIMEOUT, 0),
                }
            }
            sweep.start = cursor + 1;
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
    }
}

/// Waits for a probe until `deadline`, then kills it (by pidfd: no sleeping poll loop).
fn wait_until(pid: libc::pid_t, deadline: Instant) -> Waited {
    let mut status = 0;
    let pidfd = u32::try_from(pid).ok().map(crate::sys::exec::pidfd_open);
    if let Some(Ok(fd)) = pidfd {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = crate::sys::exec::poll_millis(left);
        // SAFETY: polls one descriptor we own.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) } == 0 {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Waited::TimedOut;
        }
    }
    // SAFETY: reaps our own child (it has ended, or pidfds are unavailable).
    unsafe { libc::waitpid(pid, &mut status, 0) };
    Waited::Exited(status)
}

/// The sweeping child: puts binfmtd's signal handlers back to their defaults and the mask
/// as it was, then execs each probe from `start` on; every exec that fails returns here
/// with its errno and the next is tried. The first that succeeds ends the sweep (and
/// releases the parent); if none does, the child exits.
extern "C" fn sweeper(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's Sweep, which stays valid (the parent's thread is
    // suspended until this child execs or exits); only system calls follow.
    unsafe {
        let sweep = &mut *arg.cast::<Sweep>();
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in &sweep.handled[..sweep.handled_count] {
            libc::sigaction(*sig, &dfl, std::ptr::null_mut());
        }
        libc::sigprocmask(libc::SIG_SETMASK, &sweep.mask, std::ptr::null_mut());
        for k in sweep.start..sweep.count {
            std::ptr::write_volatile(&mut sweep.cursor, k);
            match &*sweep.targets.add(k) {
                Target::Memfd(fd) => libc::execveat(
                    fd.as_raw_fd(),
                    c"".as_ptr(),
                    sweep.argv.as_ptr().cast(),
                    sweep.envp.as_ptr().cast(),
                    libc::AT_EMPTY_PATH,
                ),
                Target::File(path) => {
                    libc::execve(path.as_ptr(), sweep.argv.as_ptr(), sweep.envp.as_ptr())
                }
            };
            *sweep.errors.add(k) = *libc::__errno_location();
        }
        std::ptr::write_volatile(&mut sweep.cursor, sweep.count);
        libc::_exit(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native() -> String {
        crate::host::detect::qemu_arch_of_uname(std::env::consts::ARCH)
            .unwrap_or("x86_64")
            .to_string()
    }

    #[test]
    fn sweep_answers_native_foreign_and_missing_in_order() {
        // The foreign probes come first and last, so a successful exec in the middle must
        // hand the sweep on to the probes after it.
        let arches: Vec<String> = ["s390x", "riscv64", &native(), "no-such-isa", "ppc64le"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let got = run(&arches, Place::Direct, Duration::from_secs(10));
        let names: Vec<&str> = got.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(names, arches.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(got[2].1, ProbeOutcome::Passed, "{got:?}");
        assert_eq!(got[3].1, ProbeOutcome::NoProbe);
        // Foreign probes: ENOEXEC, unless this instance has a handler for them.
        for i in [0, 1, 4] {
            assert!(
                matches!(&got[i].1, ProbeOutcome::ExecFailed { errno, .. } if *errno == libc::ENOEXEC)
                    || got[i].1.passed(),
                "{got:?}"
            );
        }
    }

    #[test]
    fn file_fallback_runs_the_same_probes() {
        let native = native();
        let program = super::super::exit_program(&native, PROBE_EXIT_CODE).expect("probe");
        let mut dir = None;
        let targets = files(&[&program], &mut dir).expect("files");
        let mut outcomes = vec![None];
        execute(
            &targets,
            &[0],
            Place::Direct,
            Duration::from_secs(10),
            &mut outcomes,
        );
        assert_eq!(outcomes[0], Some(ProbeOutcome::Passed));
    }
}
