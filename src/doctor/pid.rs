//! `--pid`: diagnose a running emulated process: two samples of its threads, the static
//! findings for the binary it runs (read through /proc/PID/root), known defects, next steps.

use super::checks_cpu::defect_findings;
use super::defects::Query;
use super::findings::{Finding, FindingId as Id};
use crate::catalog::Translator;
use crate::procs::classify::Class;
use crate::procs::container::Runtime;
use crate::procs::source::ProcSource;
use crate::procs::{self, Process};
use serde::Serialize;

/// The process part of a `--pid` report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PidOutcome {
    /// The sampled process, in the shape of one `binfmtd ps --json` process.
    pub process: Process,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<procs::container::Container>,
    pub sample_ms: u64,
    /// One line with the evidence, e.g. "blocked in futex for 42 s in all 12 threads".
    pub verdict: String,
    /// What to try next, most specific first.
    pub next_steps: Vec<String>,
}

impl PidOutcome {
    pub fn problem(&self) -> bool {
        self.process.class.is_problem()
    }
}

/// The guest program's path inside the process's root (a relative one against its cwd).
pub fn guest_path(pid: i32, p: &Process) -> String {
    if p.guest.path.starts_with('/') {
        return p.guest.path.clone();
    }
    let link = |f: &str| std::fs::read_link(format!("/proc/{pid}/{f}")).ok();
    let cwd = link("cwd")
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    let root = link("root")
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_default();
    let inner = match cwd.strip_prefix(root.trim_end_matches('/')) {
        Some(rest) if root != "/" => rest.to_string(),
        _ => cwd,
    };
    format!("{}/{}", inner.trim_end_matches('/'), p.guest.path)
}

/// Files mapped into the process (the guest's libraries live in qemu's address space).
pub fn mapped_files(pid: i32) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut v: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/'))
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Known-defect findings for the live process.
pub fn live_defects(
    p: &Process,
    go: Option<&str>,
    libraries: &[String],
    kernel: Option<&str>,
) -> Vec<Finding> {
    let q = Query {
        translator: Some(p.emulator.translator),
        translator_version: p.emulator.version.as_deref(),
        is_go: go.is_some(),
        go_version: go,
        arch: Some(&p.guest.arch),
        kernel,
        program: p.guest.path.rsplit('/').next(),
        libraries,
        x86_level: None,
    };
    defect_findings(&q)
}

/// What to try next, from the class, the emulator and the container runtime.
pub fn next_steps(p: &Process, runtime: Option<Runtime>) -> Vec<String> {
    let mut v = Vec::new();
    let blocked_in = |name: &str| p.threads.iter().any(|t| t.syscall.as_deref() == Some(name));
    if p.class == Class::Blocked && blocked_in("futex") {
        v.push("all threads wait on futexes: a lost wake-up or a lock held by a thread that died; see the known defects above, and for Go programs try GODEBUG=asyncpreemptoff=1".into());
    }
    if p.class == Class::Blocked
        && (blocked_in("read") || blocked_in("wait4") || blocked_in("waitid"))
    {
        v.push("it waits for input or for a child: check what should write to it (a pipe's other end, a child process) before blaming the emulator".into());
    }
    if p.emulator.translator == Translator::Qemu {
        v.push("rerun with QEMU_STRACE=1 in its environment (docker run -e QEMU_STRACE=1 ...) to log the guest's syscalls up to the hang".into());
        v.push("rerun with QEMU_GDB=1234 and attach `gdb-multiarch -ex 'target remote :1234'` to see the guest's stack".into());
        v.push("set QEMU_CPU (e.g. QEMU_CPU=max, or an older model) when the guest code depends on CPU features".into());
    }
    match (p.emulator.translator, p.guest.arch.as_str()) {
        (Translator::Qemu, "x86_64") => v.push("on an arm64 host, switch this platform to Rosetta or FEX (`binfmtd install rosetta` or `binfmtd install fex`)".into()),
        (Translator::Rosetta | Translator::Fex | Translator::Box64, _) => v.push("switch this platform to qemu-x86_64 (`binfmtd install qemu-x86_64 --no-prefer-rosetta --force`) to tell a translator defect from a program bug".into()),
        _ => {}
    }
    match runtime {
        Some(Runtime::Buildkit) => v.push("in a build, run this step on the build platform (FROM --platform=$BUILDPLATFORM) and cross-compile, instead of emulating it".into()),
        Some(Runtime::Docker | Runtime::Podman) => v.push("in a container, pin the emulator the engine uses (docker run --privileged tonistiigi/binfmt --install ARCH installs a newer qemu) or build a native image".into()),
        Some(Runtime::Containerd | Runtime::Crio) => v.push("on Kubernetes, schedule the pod on a node of its own architecture (nodeSelector kubernetes.io/arch) instead of emulating it".into()),
        _ => {}
    }
    v
}

/// A finding for the process's verdict.
pub fn verdict_finding(o: &PidOutcome) -> Finding {
    let p = &o.process;
    let id = match p.class {
        Class::Blocked => Id::RunHangBlocked,
        Class::Spinning => Id::RunHangSpinning,
        Class::Stopped | Class::Zombie => Id::RunSignaled,
        Class::Healthy | Class::Running => Id::RunOk,
    };
    let msg = format!(
        "process {} ({}) under {}: {}",
        p.pid, p.comm, p.emulator.handler, p.summary
    );
    let f = if o.problem() {
        Finding::error(id, msg)
    } else {
        Finding::info(id, msg)
    };
    let threads: Vec<String> = p
        .threads
        .iter()
        .take(16)
        .map(|t| {
            format!(
                "{} {} {}",
                t.tid,
                t.state,
                t.syscall.as_deref().unwrap_or("-")
            )
        })
        .collect();
    f.with("threads", threads.join("; "))
}

/// Samples the process: `Err` says why it cannot be diagnosed (exit 2 or 4).
pub fn sample(
    src: &dyn ProcSource,
    catalog: &crate::catalog::Catalog,
    pid: i32,
    secs: f64,
) -> Result<PidOutcome, procs::ProcsError> {
    let opts = procs::ScanOptions {
        window: std::time::Duration::from_secs_f64(secs),
        container: None,
        viewer: procs::Viewer::Everything,
        host_arch: std::env::consts::ARCH.to_string(),
    };
    let interps = procs::guest::Interpreters::from_catalog(catalog);
    let process = procs::inspect(src, &interps, &opts, pid)?;
    let container = process.container.clone();
    let next = next_steps(&process, container.as_ref().map(|c| c.runtime));
    Ok(PidOutcome {
        verdict: process.summary.clone(),
        container,
        sample_ms: opts.window.as_millis() as u64,
        next_steps: next,
        process,
    })
}
