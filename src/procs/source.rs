//! The seam to /proc: a small trait, the real reader (the `procfs` crate) and recorded data for tests.

use super::classify::ThreadSample;
use super::container::{Container, Runtime};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why something about a process could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// It exited (or is a kernel thread with no exe): skipped silently.
    Gone,
    /// Permission denied: counted and explained once.
    Denied,
}

/// What is read of one process once it looks emulated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawProcess {
    pub comm: String,
    pub cmdline: Vec<String>,
    /// None when auxv is not readable.
    pub auxv: Option<Vec<(u64, u64)>>,
    /// `/proc/PID/cgroup` as text.
    pub cgroup: String,
    /// Real, effective, saved and filesystem uid.
    pub uids: [u32; 4],
    /// Owner of `/proc/PID` (root when the process is not dumpable).
    pub owner: u32,
}

/// Everything `ps` and `doctor --pid` read from /proc.
pub trait ProcSource {
    /// Every PID in the PID namespace of /proc.
    fn pids(&self) -> std::io::Result<Vec<i32>>;
    /// The target of `/proc/PID/exe`.
    fn exe(&self, pid: i32) -> Result<String, Miss>;
    fn process(&self, pid: i32) -> Result<RawProcess, Miss>;
    /// One sample of every thread.
    fn threads(&self, pid: i32) -> Result<Vec<ThreadSample>, Miss>;
    /// The target of `/proc/PID/fd/FD` (`pipe:[123]`, `socket:[4]`, a path).
    fn fd_target(&self, pid: i32, fd: u64) -> Option<String>;
    /// The scheduler clock now, in ms, comparable with `ThreadSample::exec_start_ms`.
    fn clock_ms(&self) -> Option<f64>;
    /// Clock ticks per second of the CPU times.
    fn ticks_per_second(&self) -> u64;
    /// The container's name, where the runtime's state is readable.
    fn container_name(&self, c: &Container) -> Option<String>;
    /// The emulator's version, when its file is the host's file at the same path.
    fn emulator_version(
        &self,
        pid: i32,
        exe: &str,
        t: crate::catalog::Translator,
    ) -> Option<String>;
}

fn miss(e: &procfs::ProcError) -> Miss {
    match e {
        procfs::ProcError::PermissionDenied(_) => Miss::Denied,
        procfs::ProcError::Io(io, _) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            Miss::Denied
        }
        _ => Miss::Gone,
    }
}

fn io_miss(e: &std::io::Error) -> Miss {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => Miss::Denied,
        _ => Miss::Gone,
    }
}

/// `se.exec_start` of a `sched` file, in ms.
pub fn parse_exec_start(sched: &str) -> Option<f64> {
    sched
        .lines()
        .find(|l| l.starts_with("se.exec_start"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
}

/// The live system's /proc.
#[derive(Debug, Default)]
pub struct LiveProc {
    versions: std::sync::Mutex<BTreeMap<String, Option<String>>>,
}

impl LiveProc {
    pub fn new() -> LiveProc {
        LiveProc::default()
    }
}

fn task_sample(task: &procfs::process::Task) -> Result<ThreadSample, Miss> {
    let stat = task.stat().map_err(|e| miss(&e))?;
    let base = PathBuf::from(format!("/proc/{}/task/{}", task.pid, task.tid));
    let text = |f: &str| std::fs::read_to_string(base.join(f)).ok();
    Ok(ThreadSample {
        tid: task.tid,
        state: stat.state,
        cpu_ticks: stat.utime + stat.stime,
        syscall: text("syscall").map(|s| s.trim().to_string()),
        wchan: text("wchan")
            .map(|s| s.trim().to_string())
            .filter(|w| !w.is_empty() && w != "0"),
        exec_start_ms: text("sched").as_deref().and_then(parse_exec_start),
    })
}

impl ProcSource for LiveProc {
    fn pids(&self) -> std::io::Result<Vec<i32>> {
        Ok(std::fs::read_dir("/proc")?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect())
    }

    fn exe(&self, pid: i32) -> Result<String, Miss> {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| io_miss(&e))
    }

    fn process(&self, pid: i32) -> Result<RawProcess, Miss> {
        let p = procfs::process::Process::new(pid).map_err(|e| miss(&e))?;
        let status = p.status().map_err(|e| miss(&e))?;
        let cgroup =
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|e| io_miss(&e))?;
        Ok(RawProcess {
            comm: status.name.clone(),
            cmdline: p.cmdline().map_err(|e| miss(&e))?,
            auxv: p.auxv().ok().map(|m| m.into_iter().collect()),
            cgroup,
            uids: [status.ruid, status.euid, status.suid, status.fuid],
            owner: p.uid().map_err(|e| miss(&e))?,
        })
    }

    fn threads(&self, pid: i32) -> Result<Vec<ThreadSample>, Miss> {
        let p = procfs::process::Process::new(pid).map_err(|e| miss(&e))?;
        let mut out = Vec::new();
        for t in p.tasks().map_err(|e| miss(&e))?.flatten() {
            // A thread that exits between listing and reading is skipped.
            if let Ok(s) = task_sample(&t) {
                out.push(s);
            }
        }
        if out.is_empty() {
            return Err(Miss::Gone);
        }
        Ok(out)
    }

    fn fd_target(&self, pid: i32, fd: u64) -> Option<String> {
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    fn clock_ms(&self) -> Option<f64> {
        let me = nix::unistd::gettid();
        let sched = std::fs::read_to_string(format!("/proc/self/task/{me}/sched")).ok()?;
        parse_exec_start(&sched)
    }

    fn ticks_per_second(&self) -> u64 {
        procfs::ticks_per_second()
    }

    fn container_name(&self, c: &Container) -> Option<String> {
        match c.runtime {
            Runtime::Docker => docker_name(Path::new("/var/lib/docker/containers"), &c.id),
            Runtime::Podman => podman_name(
                Path::new("/var/lib/containers/storage/overlay-containers/containers.json"),
                &c.id,
            ),
            Runtime::Nspawn | Runtime::Lxc => Some(c.id.clone()),
            _ => None,
        }
    }

    fn emulator_version(
        &self,
        pid: i32,
        exe: &str,
        t: crate::catalog::Translator,
    ) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let running = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
        let host = std::fs::metadata(exe).ok()?;
        // Only the host's own file is run for its version, never a container's.
        if (running.dev(), running.ino()) != (host.dev(), host.ino()) {
            return None;
        }
        let mut cache = self.versions.lock().ok()?;
        cache
            .entry(exe.to_string())
            .or_insert_with(|| crate::catalog::discover::query_version(Path::new(exe), t))
            .clone()
    }
}

/// Docker's name for a container: `"Name": "/web"` in `config.v2.json`.
pub fn docker_name(dir: &Path, id: &str) -> Option<String> {
    let text = std::fs::read(dir.join(id).join("config.v2.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    Some(v.get("Name")?.as_str()?.trim_start_matches('/').to_string())
}

/// Podman's (rootful) name for a container, from the storage's `containers.json`.
pub fn podman_name(file: &Path, id: &str) -> Option<String> {
    let text = std::fs::read(file).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    v.as_array()?
        .iter()
        .find(|c| c.get("id").and_then(|i| i.as_str()) == Some(id))?
        .get("names")?
        .get(0)?
        .as_str()
        .map(str::to_string)
}

/// Recorded /proc data, for tests of everything above the seam.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub exes: BTreeMap<i32, Result<String, Miss>>,
    pub processes: BTreeMap<i32, Result<RawProcess, Miss>>,
    /// Successive samples per PID: the first read returns the first, then the next.
    pub samples: BTreeMap<i32, Vec<Vec<ThreadSample>>>,
    pub fds: BTreeMap<(i32, u64), String>,
    pub clock_ms: Option<f64>,
    pub names: BTreeMap<String, String>,
    pub versions: BTreeMap<String, String>,
    pub reads: std::sync::Arc<std::sync::Mutex<BTreeMap<i32, usize>>>,
}

impl ProcSource for Recorded {
    fn pids(&self) -> std::io::Result<Vec<i32>> {
        Ok(self.exes.keys().copied().collect())
    }
    fn exe(&self, pid: i32) -> Result<String, Miss> {
        self.exes.get(&pid).cloned().unwrap_or(Err(Miss::Gone))
    }
    fn process(&self, pid: i32) -> Result<RawProcess, Miss> {
        self.processes.get(&pid).cloned().unwrap_or(Err(Miss::Gone))
    }
    fn threads(&self, pid: i32) -> Result<Vec<ThreadSample>, Miss> {
        let all = self.samples.get(&pid).ok_or(Miss::Gone)?;
        let mut reads = self.reads.lock().map_err(|_| Miss::Gone)?;
        let n = reads.entry(pid).or_insert(0);
        let got = all.get(*n).cloned().ok_or(Miss::Gone);
        *n += 1;
        got
    }
    fn fd_target(&self, pid: i32, fd: u64) -> Option<String> {
        self.fds.get(&(pid, fd)).cloned()
    }
    fn clock_ms(&self) -> Option<f64> {
        self.clock_ms
    }
    fn ticks_per_second(&self) -> u64 {
        100
    }
    fn container_name(&self, c: &Container) -> Option<String> {
        self.names.get(&c.id).cloned()
    }
    fn emulator_version(&self, _: i32, exe: &str, _: crate::catalog::Translator) -> Option<String> {
        self.versions.get(exe).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_and_runtime_state() {
        let sched = "sleep (12, #threads: 1)\n---\nse.exec_start                                :       1238510.332687\nse.vruntime : 1\n";
        assert_eq!(parse_exec_start(sched), Some(1238510.332687));
        assert_eq!(parse_exec_start("nothing"), None);
        let dir = tempfile::tempdir().expect("tempdir");
        let id = "a".repeat(64);
        std::fs::create_dir_all(dir.path().join(&id)).expect("mkdir");
        std::fs::write(
            dir.path().join(&id).join("config.v2.json"),
            r#"{"Name":"/web"}"#,
        )
        .expect("write");
        assert_eq!(docker_name(dir.path(), &id).as_deref(), Some("web"));
        assert_eq!(docker_name(dir.path(), "b"), None);
        let pj = dir.path().join("containers.json");
        std::fs::write(&pj, format!(r#"[{{"id":"{id}","names":["api"]}}]"#)).expect("write");
        assert_eq!(podman_name(&pj, &id).as_deref(), Some("api"));
        assert_eq!(podman_name(&pj, "x"), None);
    }
}
