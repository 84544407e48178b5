//! `--run`: execute the program (chrooted into --root when it is not `/`) with a timeout, map
//! its exit and stderr to findings, and classify a hang from /proc task states and syscalls.

use super::findings::{Finding, FindingId as Id};
use super::runas::{IdentityKind, RunIdentity};
use super::syscalls::{self, SyscallState};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Lines of stderr kept.
const TAIL: usize = 20;

/// One thread of a hung process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadState {
    pub tid: u32,
    /// Scheduler state letter from /proc (R running, S sleeping, D disk wait...).
    pub state: String,
    /// The host syscall it is blocked in, or "running".
    pub syscall: String,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum RunStatus {
    Exited { code: i32 },
    Signaled { signal: String },
    HangBlocked { syscalls: Vec<String> },
    HangSpinning,
    ExecFailed { error: String },
}

/// The result of `--run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunOutcome {
    pub command: Vec<String>,
    /// Who the program ran as: never the host's root.
    pub identity: RunIdentity,
    pub status: RunStatus,
    pub elapsed_ms: u64,
    pub stderr_tail: Vec<String>,
    pub threads: Vec<ThreadState>,
    /// Last guest syscalls logged by qemu with QEMU_STRACE=1, when the handler is qemu.
    pub guest_syscalls: Vec<String>,
}

impl RunOutcome {
    pub fn success(&self) -> bool {
        self.status == RunStatus::Exited { code: 0 }
    }
    pub fn describe(&self) -> String {
        match &self.status {
            RunStatus::Exited { code } => {
                format!("exited with status {code} after {} ms", self.elapsed_ms)
            }
            RunStatus::Signaled { signal } => {
                format!("killed by {signal} after {} ms", self.elapsed_ms)
            }
            RunStatus::HangBlocked { syscalls } => {
                format!("hung: blocked in host syscall(s) {}", syscalls.join(", "))
            }
            RunStatus::HangSpinning => {
                "hung: spinning on a CPU (translated code loops without syscalls)".into()
            }
            RunStatus::ExecFailed { error } => format!("could not be started: {error}"),
        }
    }
}

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    pub root: &'a Path,
    pub root_is_host: bool,
    /// Path inside the root.
    pub path: &'a str,
    pub args: &'a [std::ffi::OsString],
    pub timeout: Duration,
    pub env: Vec<(String, String)>,
    pub host_arch: &'a str,
    /// Who to run it as ([`super::runas::for_this_process`]).
    pub identity: RunIdentity,
}

/// Runs once and classifies the outcome.
pub fn run(spec: &RunSpec<'_>) -> RunOutcome {
    let mut command = vec![spec.path.to_string()];
    command.extend(spec.args.iter().map(|a| a.to_string_lossy().into_owned()));
    let failed = |error: String| RunOutcome {
        command: command.clone(),
        identity: spec.identity.clone(),
        status: RunStatus::ExecFailed { error },
        elapsed_ms: 0,
        stderr_tail: vec![],
        threads: vec![],
        guest_syscalls: vec![],
    };
    if spec.identity.kind == IdentityKind::Refused {
        return failed(spec.identity.note.clone());
    }
    let start = Instant::now();
    let mut child = match command_for(spec).spawn() {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    let reader = child.stderr.take().map(stderr_tail_reader);
    let (status, threads) = wait_classified(&mut child, spec, start);
    let elapsed_ms = start.elapsed().as_millis() as u64;
    let stderr_tail = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    RunOutcome {
        command,
        identity: spec.identity.clone(),
        status,
        elapsed_ms,
        stderr_tail,
        threads,
        guest_syscalls: vec![],
    }
}

/// The command: stdin and stdout closed, stderr piped, its own process group, chrooted into
/// a root that is not `/`, and switched to nobody when the caller is root.
fn command_for(spec: &RunSpec<'_>) -> Command {
    let mut cmd = Command::new(spec.path);
    cmd.args(spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    let drop_root = spec.identity.drops_root();
    let chroot = (!spec.root_is_host).then(|| {
        let root =
            std::ffi::CString::new(spec.root.as_os_str().as_encoded_bytes()).unwrap_or_default();
        let uid_map = format!("0 {} 1", nix::unistd::geteuid());
        let gid_map = format!("0 {} 1", nix::unistd::getegid());
        (root, uid_map, gid_map)
    });
    let root_user = nix::unistd::geteuid().is_root();
    let exec = Exec::new(spec);
    // SAFETY: runs in the forked child before exec; only async-signal-safe libc calls.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((root, uid_map, gid_map)) = &chroot {
                enter_root(root, root_user, uid_map, gid_map)?;
            }
            if drop_root {
                super::runas::drop_to_nobody()?;
            }
            exec.execve()
        });
    }
    cmd
}

/// A prepared `execve` (built before the fork: the child must not allocate). std's own exec
/// is glibc's `execvp`, which runs a file the kernel refuses with ENOEXEC through `/bin/sh`;
/// doctor must report "Exec format error" instead.
struct Exec {
    _strings: Vec<std::ffi::CString>,
    path: *const libc::c_char,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into `_strings`, which the struct owns and never changes.
unsafe impl Send for Exec {}
// SAFETY: as above; the pointers are only read.
unsafe impl Sync for Exec {}

impl Exec {
    fn new(spec: &RunSpec<'_>) -> Exec {
        let c = |b: &[u8]| std::ffi::CString::new(b.to_vec()).unwrap_or_default();
        let mut env: BTreeMap<std::ffi::OsString, std::ffi::OsString> =
            std::env::vars_os().collect();
        for (k, v) in &spec.env {
            env.insert(k.into(), v.into());
        }
        let path = c(spec.path.as_bytes());
        let argv: Vec<std::ffi::CString> = std::iter::once(path.clone())
            .chain(spec.args.iter().map(|a| c(a.as_encoded_bytes())))
            .collect();
        let envp: Vec<std::ffi::CString> = env
            .iter()
            .map(|(k, v)| c(&[k.as_encoded_bytes(), b"=", v.as_encoded_bytes()].concat()))
            .collect();
        let ptrs = |v: &[std::ffi::CString]| {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        let (argv_p, envp_p) = (ptrs(&argv), ptrs(&envp));
        let path_p = path.as_ptr();
        let mut strings = vec![path];
        strings.extend(argv);
        strings.extend(envp);
        Exec {
            _strings: strings,
            path: path_p,
            argv: argv_p,
            envp: envp_p,
        }
    }

    /// Replaces the process; returns only the error.
    fn execve(&self) -> std::io::Result<()> {
        // SAFETY: NUL-terminated strings and null-terminated arrays owned by self.
        unsafe { libc::execve(self.path, self.argv.as_ptr(), self.envp.as_ptr()) };
        Err(std::io::Error::last_os_error())
    }
}

/// Collects the last [`TAIL`] lines of the child's stderr on a thread.
fn stderr_tail_reader(mut err: std::process::ChildStderr) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut tail: VecDeque<String> = VecDeque::new();
        let mut buf = [0u8; 8192];
        let mut partial = Vec::new();
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            partial.extend_from_slice(&buf[..n]);
            while let Some(i) = partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = partial.drain(..=i).collect();
                tail.push_back(String::from_utf8_lossy(&line).trim_end().to_string());
                if tail.len() > TAIL {
                    tail.pop_front();
                }
            }
            partial.truncate(4096);
        }
        if !partial.is_empty() {
            tail.push_back(String::from_utf8_lossy(&partial).trim_end().to_string());
        }
        tail.into_iter().collect::<Vec<_>>()
    })
}

/// Waits for the child until the timeout; a hung child is classified, then killed.
fn wait_classified(
    child: &mut std::process::Child,
    spec: &RunSpec<'_>,
    start: Instant,
) -> (RunStatus, Vec<ThreadState>) {
    let pid = child.id();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                let status = match (st.code(), st.signal()) {
                    (Some(code), _) => RunStatus::Exited { code },
                    (_, Some(sig)) => RunStatus::Signaled {
                        signal: nix::sys::signal::Signal::try_from(sig)
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_else(|_| format!("signal {sig}")),
                    },
                    _ => RunStatus::Exited { code: -1 },
                };
                return (status, vec![]);
            }
            Ok(None) if start.elapsed() >= spec.timeout => {
                let classified = classify_hang(pid, spec.host_arch);
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.wait();
                return classified;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let error = e.to_string();
                return (RunStatus::ExecFailed { error }, vec![]);
            }
        }
    }
}

/// In the child: a user namespace when not root, then chroot into the root.
fn enter_root(
    root: &std::ffi::CStr,
    root_user: bool,
    uid_map: &str,
    gid_map: &str,
) -> std::io::Result<()> {
    if !root_user {
        // SAFETY: plain syscalls on valid pointers in the single-threaded child.
        unsafe {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            write_proc(c"/proc/self/setgroups", b"deny");
            write_proc(c"/proc/self/uid_map", uid_map.as_bytes());
            write_proc(c"/proc/self/gid_map", gid_map.as_bytes());
        }
    }
    // SAFETY: valid NUL-terminated paths.
    unsafe {
        if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// # Safety
/// Call only in a forked child; uses raw open/write/close.
unsafe fn write_proc(path: &std::ffi::CStr, data: &[u8]) {
    // SAFETY: the caller guarantees the context; arguments are valid.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
        if fd >= 0 {
            libc::write(fd, data.as_ptr().cast(), data.len());
            libc::close(fd);
        }
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the comm: state is [0]; utime [11], stime [12].
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// Reads every thread of `pid` and decides: blocked in host syscalls, or spinning.
pub fn classify_hang(pid: u32, host_arch: &str) -> (RunStatus, Vec<ThreadState>) {
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    let busy = cpu_ticks(pid).saturating_sub(t0) >= 15; // >= 50% of one CPU (100 Hz ticks)
    let mut threads = Vec::new();
    let tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for tid in tids {
        let base = format!("/proc/{pid}/task/{tid}");
        let stat = std::fs::read_to_string(format!("{base}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        let sc = std::fs::read_to_string(format!("{base}/syscall"))
            .ok()
            .and_then(|t| syscalls::parse_proc_syscall(&t));
        let syscall = match sc {
            Some(SyscallState::Running) => "running".to_string(),
            Some(SyscallState::NotInSyscall) => "not in a syscall".to_string(),
            Some(SyscallState::In(n)) => syscalls::name(host_arch, n)
                .map(str::to_string)
                .unwrap_or_else(|| format!("syscall {n}")),
            None => "unknown (no access to /proc/PID/syscall)".to_string(),
        };
        threads.push(ThreadState {
            tid,
            state,
            syscall,
        });
    }
    let running = threads
        .iter()
        .any(|t| t.state == "R" || t.syscall == "running");
    if busy || running {
        return (RunStatus::HangSpinning, threads);
    }
    let mut names: Vec<String> = threads.iter().map(|t| t.syscall.clone()).collect();
    names.sort();
    names.dedup();
    (RunStatus::HangBlocked { syscalls: names }, threads)
}

/// Findings for the outcome, including known messages recognised in stderr.
pub fn findings(o: &RunOutcome) -> Vec<Finding> {
    let mut out = Vec::new();
    let cmd = o.command.join(" ");
    match &o.status {
        RunStatus::Exited { code: 0 } => out.push(Finding::info(Id::RunOk, format!("`{cmd}` exited 0 in {} ms", o.elapsed_ms))),
        RunStatus::Exited { code } => out.push(
            Finding::error(Id::RunFailed, format!("`{cmd}` exited with status {code}"))
                .with("stderr", o.stderr_tail.last().cloned().unwrap_or_default())
                .fix("read the stderr lines above; the findings below map known messages to causes"),
        ),
        RunStatus::Signaled { signal } => out.push(
            Finding::error(Id::RunSignaled, format!("`{cmd}` was killed by {signal}"))
                .with("signal", signal)
                .fix("SIGILL/SIGSEGV under emulation often mean an ISA level or emulator defect; check the other findings"),
        ),
        RunStatus::HangBlocked { syscalls } => out.push(
            Finding::error(Id::RunHangBlocked, format!("`{cmd}` hung, blocked in host syscall {}", syscalls.join(", ")))
                .with("threads", o.threads.iter().map(|t| format!("{} {} {}", t.tid, t.state, t.syscall)).collect::<Vec<_>>().join("; "))
                .fix("a thread waits forever (futex/wait: a lost wakeup or a child that never exits); see the guest syscalls and known-emulator-defect findings"),
        ),
        RunStatus::HangSpinning => out.push(
            Finding::error(Id::RunHangSpinning, format!("`{cmd}` hung, spinning at full CPU in translated code"))
                .with("threads", o.threads.iter().map(|t| format!("{} {} {}", t.tid, t.state, t.syscall)).collect::<Vec<_>>().join("; "))
                .fix("an emulator busy-loop (e.g. a spin on an atomic qemu emulates poorly); try another qemu version or translator"),
        ),
        RunStatus::ExecFailed { error } => out.push(
            Finding::error(Id::RunExecFailed, format!("`{cmd}` could not be started: {error}"))
                .fix("\"Exec format error\" means no binfmt_misc handler; \"No such file\" means a missing loader or interpreter"),
        ),
    }
    for line in &o.stderr_tail {
        if let Some(f) = stderr_finding(line) {
            // Dropped to nobody with no_new_privs, setuid cannot work whatever the flags.
            if f.id == Id::SetuidNeedsCredentials && o.identity.drops_root() {
                continue;
            }
            out.push(f.with("observed", line));
        }
    }
    out
}

/// Maps a well-known stderr line to the finding that explains it.
pub fn stderr_finding(line: &str) -> Option<Finding> {
    if let Some(rest) = line.split_once("Could not open '").map(|(_, r)| r) {
        let path = rest.split('\'').next().unwrap_or(rest);
        return Some(
            Finding::error(
                Id::LoaderMissing,
                format!("the emulator could not open the loader {path}"),
            )
            .about(path),
        );
    }
    if line.contains("error while loading shared libraries") {
        let lib = line
            .split("libraries: ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .unwrap_or("?");
        return Some(
            Finding::error(
                Id::LibraryMissing,
                format!("the loader could not find {lib}"),
            )
            .about(lib),
        );
    }
    if line.contains("effective uid is not 0") {
        return Some(Finding::error(
            Id::SetuidNeedsCredentials,
            "setuid had no effect: the binfmt_misc entry lacks C",
        ));
    }
    if let Some(i) = line.find("CPU does not support x86-64-v") {
        let lvl = &line[i + "CPU does not support ".len()..];
        return Some(
            Finding::error(
                Id::IsaLevelUnsupported,
                format!("the CPU or translator lacks {}", lvl.trim()),
            )
            .about(lvl.trim()),
        );
    }
    if line.contains("Unsupported system page size") {
        return Some(Finding::error(
            Id::JemallocPageSize,
            "jemalloc refused the host page size",
        ));
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stderr_mapping_table() {
        for (line, id) in [
            ("qemu-aarch64: Could not open '/lib/ld-linux-aarch64.so.1': No such file or directory", "loader-missing"),
            ("./app: error while loading shared libraries: libfoo.so.1: cannot open shared object file", "library-missing"),
            ("sudo: effective uid is not 0, is /usr/bin/sudo on a file system with the 'nosuid' option set", "setuid-needs-credentials"),
            ("Fatal glibc error: CPU does not support x86-64-v3", "isa-level-unsupported"),
            ("<jemalloc>: Unsupported system page size", "jemalloc-page-size"),
        ] {
            assert_eq!(stderr_finding(line).unwrap().id.as_str(), id, "{line}");
        }
        assert!(stderr_finding("hello").is_none());
    }

    fn spec<'a>(path: &'a str, args: &'a [std::ffi::OsString], secs: u64) -> RunSpec<'a> {
        RunSpec {
            root: Path::new("/"),
            root_is_host: true,
            path,
            args,
            timeout: Duration::from_secs(secs),
            env: vec![],
            host_arch: "x86_64",
            identity: crate::doctor::runas::for_this_process(),
        }
    }

    #[test]
    fn exit_signal_and_hang_classes() {
        let a = |v: &[&str]| v.iter().map(|s| s.into()).collect::<Vec<_>>();
        let ok = run(&spec("/bin/sh", &a(&["-c", "echo oops >&2; exit 3"]), 5));
        assert_eq!(ok.status, RunStatus::Exited { code: 3 });
        assert_eq!(ok.stderr_tail, ["oops"]);
        let sig = run(&spec("/bin/sh", &a(&["-c", "kill -SEGV $$"]), 5));
        assert_eq!(
            sig.status,
            RunStatus::Signaled {
                signal: "SIGSEGV".into()
            }
        );
        let blocked = run(&spec("/bin/sleep", &a(&["30"]), 1));
        match &blocked.status {
            RunStatus::HangBlocked { syscalls } => assert!(
                syscalls
                    .iter()
                    .any(|s| s == "clock_nanosleep" || s == "nanosleep"),
                "{syscalls:?}"
            ),
            other => panic!("{other:?}"),
        }
        let spin = run(&spec("/bin/sh", &a(&["-c", "while :; do :; done"]), 1));
        assert_eq!(spin.status, RunStatus::HangSpinning);
        let missing = run(&spec("/nonexistent/x", &[], 1));
        assert!(matches!(missing.status, RunStatus::ExecFailed { .. }));
        let ids: Vec<&str> = [ok, sig, blocked, spin, missing]
            .iter()
            .flat_map(findings)
            .map(|f| f.id.as_str())
            .collect();
        for id in [
            "run-failed",
            "run-signaled",
            "run-hang-blocked",
            "run-hang-spinning",
            "run-exec-failed",
        ] {
            assert!(ids.contains(&id), "{id} in {ids:?}");
        }
    }
}
