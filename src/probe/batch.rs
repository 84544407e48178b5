//! Runs many probes with one set-up per helper: a helper per core enters the empty private
//! instance or the chroot once, then takes probes from one shared queue and starts each with
//! `posix_spawn` (a plain execve: no shell fallback on ENOEXEC), one at a time.

use super::channel::{
    collect, exec_failed, fill, report, KIND_EXITED, KIND_SETUP_FAILED, KIND_SPAWN_FAILED,
};
use super::run::{ProbeOutcome, PROBE_EXIT_CODE};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

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

/// Runs the probe of every arch once, all under one set-up; results in input order.
///
/// Chrooted probes are written by the helpers themselves into a tmpfs of their own mount
/// namespace (gone with them: nothing to remove) where binfmtd may mount; else, or if that
/// set-up is refused, they are written as files under `parent` first.
pub fn run(
    arches: &[String],
    parent: &Path,
    setup: Setup,
    timeout: Duration,
) -> Vec<(String, ProbeOutcome)> {
    if setup == Setup::Chroot && crate::privilege::has(caps::Capability::CAP_SYS_ADMIN) {
        if let Some(done) = run_staged(arches, parent, setup, Staging::PrivateTmpfs, timeout) {
            return done;
        }
    }
    run_staged(arches, parent, setup, Staging::Files, timeout).unwrap_or_default()
}

/// Where the probe programs are put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Staging {
    /// Files in a temporary directory under the parent, written before the helpers start.
    Files,
    /// Each helper mounts a tmpfs over the (empty) directory in a mount namespace of its
    /// own and writes its probes there.
    PrivateTmpfs,
}

/// [`run`] with one way of staging; `None` when a helper could not set that way up (only
/// asked of [`Staging::PrivateTmpfs`], which then falls back to files).
fn run_staged(
    arches: &[String],
    parent: &Path,
    setup: Setup,
    staging: Staging,
    timeout: Duration,
) -> Option<Vec<(String, ProbeOutcome)>> {
    let mut outcomes: Vec<Option<ProbeOutcome>> = vec![None; arches.len()];
    let dir = match stage(arches, parent, staging, &mut outcomes) {
        Ok(dir) => dir,
        Err(e) => {
            let failed = ProbeOutcome::ExecFailed {
                errno: e.raw_os_error().unwrap_or(0),
                error: format!("cannot write the probes under {}: {e}", parent.display()),
            };
            return Some(arches.iter().map(|a| (a.clone(), failed.clone())).collect());
        }
    };
    let todo: Vec<usize> = (0..arches.len())
        .filter(|i| outcomes[*i].is_none())
        .collect();
    let setup_failed = in_parallel(
        arches,
        &todo,
        dir.path(),
        setup,
        staging,
        timeout,
        &mut outcomes,
    );
    if setup_failed && staging == Staging::PrivateTmpfs {
        return None;
    }
    Some(
        arches
            .iter()
            .zip(outcomes)
            .map(|(a, o)| (a.clone(), o.unwrap_or(ProbeOutcome::NoProbe)))
            .collect(),
    )
}

/// One helper per core, each running one probe at a time and taking the next from one
/// shared queue as soon as its last one ended: the cores stay busy to the last probe,
/// whichever probes are slow. Returns true when a helper's set-up failed.
fn in_parallel(
    arches: &[String],
    todo: &[usize],
    dir: &Path,
    setup: Setup,
    staging: Staging,
    timeout: Duration,
    outcomes: &mut [Option<ProbeOutcome>],
) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match Plan::new(arches, todo, dir, setup, staging) {
        Ok(plan) => plan.execute(cores.min(todo.len()), timeout, outcomes),
        Err(e) => {
            fill(outcomes, todo, exec_failed(&e));
            false
        }
    }
}

/// Makes one fresh directory and, when staging files, writes every probe (`probe-ARCH`)
/// into it; arches without a probe get their outcome now. Every file is closed before any
/// fork (an open one would fail its exec with ETXTBSY).
fn stage(
    arches: &[String],
    parent: &Path,
    staging: Staging,
    outcomes: &mut [Option<ProbeOutcome>],
) -> std::io::Result<tempfile::TempDir> {
    let dir = probe_dir(parent)?;
    for (i, arch) in arches.iter().enumerate() {
        let Some(bytes) = super::exit_program(arch, PROBE_EXIT_CODE) else {
            outcomes[i] = Some(ProbeOutcome::NoProbe);
            continue;
        };
        if staging == Staging::PrivateTmpfs {
            continue;
        }
        write_probe(&dir.path().join(file_name(arch)), &bytes)?;
    }
    Ok(dir)
}

/// A fresh directory for probe files under `parent`, readable by anyone (probes may run
/// as another user).
pub(super) fn probe_dir(parent: &Path) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("binfmtd-probes-")
        .tempdir_in(parent)?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

/// Writes one probe program as a new executable file; it is closed on return.
pub(super) fn write_probe(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(path)?;
    std::io::Write::write_all(&mut f, bytes)
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
    /// The programs the helper writes itself (private tmpfs staging), by `paths` index.
    programs: Option<Vec<Vec<u8>>>,
}

impl Plan {
    fn new(
        arches: &[String],
        todo: &[usize],
        dir: &Path,
        setup: Setup,
        staging: Staging,
    ) -> std::io::Result<Plan> {
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
        let programs = (staging == Staging::PrivateTmpfs).then(|| {
            todo.iter()
                .map(|i| super::exit_program(&arches[*i], PROBE_EXIT_CODE).unwrap_or_default())
                .collect()
        });
        Ok(Plan {
            todo: todo.to_vec(),
            paths,
            setup,
            programs,
            dir: c(dir.as_os_str().as_encoded_bytes().to_vec())?,
            instance: c(crate::kernel::DEFAULT_PATH.as_bytes().to_vec())?,
        })
    }

    /// Queues every probe, forks the helpers, reads their records until all are in or the
    /// time is up; true when a helper's set-up failed.
    fn execute(
        self,
        helpers: usize,
        timeout: Duration,
        outcomes: &mut [Option<ProbeOutcome>],
    ) -> bool {
        let failed = |outcomes: &mut [Option<ProbeOutcome>], e: std::io::Error| {
            fill(outcomes, &self.todo, exec_failed(&e));
            false
        };
        let (jobs, queue) = match self.queue() {
            Ok(q) => q,
            Err(e) => return failed(outcomes, e),
        };
        let (read, write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => return failed(outcomes, e.into()),
        };
        drop(queue);
        let mut pids = Vec::new();
        let mut fork_error = None;
        for _ in 0..helpers.max(1) {
            // SAFETY: the child only makes system calls on data prepared above, then _exits.
            let helper = unsafe { libc::fork() };
            if helper < 0 {
                fork_error = Some(std::io::Error::last_os_error());
                break;
            }
            if helper == 0 {
                drop(read);
                self.helper(jobs.as_raw_fd(), write.as_raw_fd());
            }
            pids.push(helper);
        }
        drop(write);
        drop(jobs);
        match fork_error {
            // Those that started take every probe from the queue.
            Some(e) if pids.is_empty() => failed(outcomes, e),
            _ => collect(read, &pids, timeout, &self.todo, outcomes),
        }
    }

    /// The queue of probe indices, all written before any helper starts; the write end is
    /// returned to be closed before forking, so that each helper sees the queue's end.
    fn queue(&self) -> std::io::Result<(OwnedFd, std::fs::File)> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let bytes: Vec<u8> = (0..self.paths.len())
            .flat_map(|k| u32::try_from(k).unwrap_or(u32::MAX).to_ne_bytes())
            .collect();
        // A few bytes per probe: far below a pipe's capacity, so this never blocks.
        let mut write = std::fs::File::from(write);
        std::io::Write::write_all(&mut write, &bytes)?;
        Ok((read, write))
    }

    /// In a helper: set up once, then take probes from the queue one at a time, run each
    /// and report it as it ends, until the queue is empty.
    fn helper(&self, jobs: libc::c_int, out: libc::c_int) -> ! {
        // SAFETY: only async-signal-safe system calls follow, on data prepared before fork.
        unsafe {
            libc::setpgid(0, 0);
            // Inherited by every probe across exec: an emulator's translation buffer is
            // madvised for huge pages, and zeroing a 2 MiB page costs a run that executes
            // a few instructions about 5% of its time. Only the probes' memory is affected.
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
            if let Err(e) = self.enter() {
                report(
                    out,
                    0,
                    KIND_SETUP_FAILED,
                    e.raw_os_error().unwrap_or(libc::EIO),
                );
                libc::_exit(1);
            }
            let mut argv = [std::ptr::null_mut::<libc::c_char>(); 2];
            let envp = [std::ptr::null_mut::<libc::c_char>(); 1];
            while let Some(k) = next_job(jobs) {
                let Some(path) = self.paths.get(k) else {
                    continue;
                };
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
                match rc {
                    0 => report(out, k, KIND_EXITED, wait_for(pid)),
                    _ => report(out, k, KIND_SPAWN_FAILED, rc),
                }
            }
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
                if self.programs.is_some() {
                    private_tmpfs(&self.dir)?;
                }
                if libc::chroot(self.dir.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for (path, bytes) in self.paths.iter().zip(self.programs.iter().flatten()) {
                    write_program(path, bytes)?;
                }
                Ok(())
            },
        }
    }
}

/// In a helper: a mount namespace of its own with a fresh tmpfs over `dir` (private, so
/// nothing propagates back; it is gone when the helper ends).
///
/// # Safety
/// Plain system calls; for the single-threaded helper after fork.
unsafe fn private_tmpfs(dir: &std::ffi::CStr) -> std::io::Result<()> {
    crate::sys::ns::unshare_private_mounts_raw(libc::CLONE_NEWNS)?;
    // SAFETY: NUL-terminated arguments that outlive the call.
    unsafe {
        if libc::mount(
            c"binfmtd-probes".as_ptr(),
            dir.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=0755,size=1m".as_ptr().cast(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In a helper: writes one probe program, executable, and closes it (an open file would
/// fail its exec with ETXTBSY).
///
/// # Safety
/// Plain system calls; for the single-threaded helper after fork.
unsafe fn write_program(path: &std::ffi::CStr, bytes: &[u8]) -> std::io::Result<()> {
    // SAFETY: a NUL-terminated path and a live buffer; the descriptor is closed here.
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o755,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut done = 0;
        while done < bytes.len() {
            let n = libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done);
            if n <= 0 {
                let e = std::io::Error::last_os_error();
                libc::close(fd);
                return Err(e);
            }
            done += n as usize;
        }
        libc::close(fd);
    }
    Ok(())
}

/// In a helper: the next probe index from the queue; None at its end.
///
/// # Safety
/// Plain system calls on a descriptor the helper holds.
unsafe fn next_job(jobs: libc::c_int) -> Option<usize> {
    let mut word = [0u8; 4];
    loop {
        // SAFETY: reads into a stack buffer; writes of whole words are atomic on a pipe and
        // every reader reads whole words, so each index goes to exactly one helper.
        let n = unsafe { libc::read(jobs, word.as_mut_ptr().cast(), word.len()) };
        if n == 4 {
            return usize::try_from(u32::from_ne_bytes(word)).ok();
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
}

/// In a helper: waits for its probe and returns its wait status.
///
/// # Safety
/// Waits for a child of this (single-threaded) helper.
unsafe fn wait_for(pid: libc::pid_t) -> libc::c_int {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: as above.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return status;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // Not ours to wait for any more: report it as killed.
            return libc::SIGKILL;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn chrooted_probes_answer_the_same_from_files_and_from_a_private_tmpfs() {
        use caps::Capability::{CAP_SYS_ADMIN, CAP_SYS_CHROOT};
        if !(crate::privilege::has(CAP_SYS_CHROOT) && crate::privilege::has(CAP_SYS_ADMIN)) {
            eprintln!("skipped: needs CAP_SYS_CHROOT and CAP_SYS_ADMIN");
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let native =
            crate::host::detect::qemu_arch_of_uname(std::env::consts::ARCH).unwrap_or("x86_64");
        let arches = vec![native.to_string(), "no-such-isa".to_string()];
        for staging in [Staging::Files, Staging::PrivateTmpfs] {
            let got = run_staged(
                &arches,
                dir.path(),
                Setup::Chroot,
                staging,
                Duration::from_secs(10),
            )
            .expect("the set-up works as root");
            assert_eq!(
                got[0],
                (native.to_string(), ProbeOutcome::Passed),
                "{staging:?}"
            );
            assert_eq!(got[1].1, ProbeOutcome::NoProbe, "{staging:?}");
        }
        // Nothing is left behind either way (the tmpfs went with its mount namespace).
        assert_eq!(std::fs::read_dir(dir.path()).expect("read").count(), 0);
    }
}
