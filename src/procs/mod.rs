//! Processes that run under a binfmt_misc handler: finding them, attributing them to containers
//! and classifying what their threads do ([`scan`]); [`source`] is the seam to /proc.

pub mod classify;
pub mod container;
pub mod guest;
pub mod source;

use crate::catalog::Translator;
use classify::{Class, ThreadSample};
use container::Container;
use guest::{Guest, Interpreters};
use serde::Serialize;
use source::{Miss, ProcSource, RawProcess};
use std::collections::BTreeMap;
use std::time::Duration;

/// Version tag of the JSON shape of `ps` and `ListEmulated`; bump on incompatible changes.
pub const SCHEMA: &str = "binfmtd.ps/v1";

/// Errors that stop a scan before any process is looked at.
#[derive(Debug, thiserror::Error)]
pub enum ProcsError {
    #[error("cannot list the processes in /proc: {0}; is /proc mounted?")]
    List(#[source] std::io::Error),
    #[error(
        "no process {pid}: it does not exist (or has exited); check the PID with `ps -p {pid}`"
    )]
    NoSuchPid { pid: i32 },
    #[error("permission denied reading /proc/{pid}: run as root or as the owner of process {pid}")]
    Denied { pid: i32 },
    #[error("process {pid} ({exe}) does not run under a known emulator; doctor --pid explains emulated processes (see `binfmtd ps`)")]
    NotEmulated { pid: i32, exe: String },
}

/// Whose processes a scan may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Everything this process can read (the CLI).
    Everything,
    /// Only processes this uid could read itself (the D-Bus method); uid 0 sees all.
    Uid(u32),
}

/// Options of one scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Time between the two samples; zero: one pass, no CPU figures.
    pub window: Duration,
    /// Only this container (id prefix or name).
    pub container: Option<String>,
    pub viewer: Viewer,
    /// The host's syscall table (`std::env::consts::ARCH`).
    pub host_arch: String,
}

/// The emulator a process runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Emulator {
    pub handler: String,
    pub translator: Translator,
    /// `/proc/PID/exe`.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One thread, as sampled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thread {
    pub tid: i32,
    /// Scheduler state letter (R, S, D, T, t, Z).
    pub state: String,
    pub class: Class,
    /// The host syscall it is in, by name (`syscall N` when the table lacks it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syscall: Option<String>,
    /// What the call waits on: `pipe`, `socket`, a path (for calls on a file descriptor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waits_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wchan: Option<String>,
    /// Share of one CPU over the window; absent for a single pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// How long it has been off the CPU (from `se.exec_start`), or the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_state_ms: Option<u64>,
    /// True when `in_state_ms` is only a lower bound (the sample window).
    pub at_least: bool,
}

/// One emulated process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Process {
    pub pid: i32,
    pub uid: u32,
    pub comm: String,
    /// The container (also the group's), for callers that take single processes.
    #[serde(skip)]
    pub container: Option<Container>,
    pub emulator: Emulator,
    pub guest: Guest,
    pub class: Class,
    /// One line: the class with its evidence, e.g. "blocked in read (pipe) for 12 s".
    pub summary: String,
    pub threads: Vec<Thread>,
}

/// The processes of one container (`container` null: not in a recognised container).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub container: Option<Container>,
    pub processes: Vec<Process>,
}

/// Processes that could not be read, counted once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// One thread in one line for text output: tid, state, class (with `classified`), the call
/// it is in, what it waits on, CPU share and time in state; strings from /proc escaped.
pub fn thread_line(t: &Thread, classified: bool) -> String {
    use crate::text::term;
    let call = t.syscall.as_deref().unwrap_or("-");
    let on = t
        .waits_on
        .as_deref()
        .map(|w| format!(" on {}", term(w)))
        .unwrap_or_default();
    let cpu = t
        .cpu_percent
        .map(|c| format!(" {c:.0}% CPU"))
        .unwrap_or_default();
    let class = if classified {
        format!(" {:?}", t.class)
    } else {
        String::new()
    };
    let time = t
        .in_state_ms
        .filter(|_| classified)
        .map(|ms| format!(" {}", duration(ms, t.at_least)))
        .unwrap_or_default();
    format!(
        "tid {} {}{class} {}{on}{cpu}{time}",
        t.tid,
        t.state,
        term(call)
    )
}

/// The result of a scan (`binfmtd.ps/v1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema: &'static str,
    /// The sampling window in ms (0: one pass).
    pub window_ms: u64,
    /// Every process looked at.
    pub scanned: u64,
    pub groups: Vec<Group>,
    pub unreadable: Unreadable,
}

impl Report {
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.groups.iter().flat_map(|g| g.processes.iter())
    }
}

/// A process found emulated, before its threads are sampled.
struct Found {
    pid: i32,
    exe: String,
    known: guest::Known,
    raw: RawProcess,
    guest: Guest,
    container: Option<Container>,
}

fn visible(viewer: Viewer, raw: &RawProcess) -> bool {
    match viewer {
        Viewer::Everything | Viewer::Uid(0) => true,
        Viewer::Uid(u) => raw.owner == u && raw.uids.iter().all(|x| *x == u),
    }
}

/// Looks at one PID; `Err(Denied)` is counted by the caller, `Ok(None)`: not emulated,
/// gone, or not the caller's to see.
fn find(
    src: &dyn ProcSource,
    interps: &Interpreters,
    opts: &ScanOptions,
    pid: i32,
) -> Result<Option<Found>, Miss> {
    let exe = match src.exe(pid) {
        Ok(e) => e,
        Err(Miss::Gone) => return Ok(None),
        Err(Miss::Denied) => return Err(Miss::Denied),
    };
    let Some(known) = interps.lookup(&exe) else {
        return Ok(None);
    };
    let raw = match src.process(pid) {
        Ok(r) => r,
        Err(Miss::Gone) => return Ok(None),
        Err(Miss::Denied) => return Err(Miss::Denied),
    };
    if !visible(opts.viewer, &raw) {
        return Ok(None);
    }
    let argv0 = raw.cmdline.first().map(String::as_str);
    if !guest::via_binfmt(&exe, argv0, &raw.comm, raw.auxv.as_deref()) {
        return Ok(None);
    }
    let Some(guest) = guest::guest(&raw.cmdline, raw.auxv.as_deref(), known) else {
        return Ok(None);
    };
    let mut container = container::path_of(&raw.cgroup).and_then(container::attribute);
    if let Some(c) = &mut container {
        c.name = src.container_name(c);
    }
    if let Some(q) = &opts.container {
        if !container.as_ref().is_some_and(|c| c.matches(q)) {
            return Ok(None);
        }
    }
    Ok(Some(Found {
        pid,
        exe,
        known: known.clone(),
        raw,
        guest,
        container,
    }))
}

/// Scans every process: finds the emulated ones, samples their threads twice over the
/// window (once when it is zero) and classifies them.
pub fn scan(
    src: &dyn ProcSource,
    interps: &Interpreters,
    opts: &ScanOptions,
) -> Result<Report, ProcsError> {
    let pids = src.pids().map_err(ProcsError::List)?;
    let mut unreadable = 0u64;
    let mut found = Vec::new();
    for pid in &pids {
        match find(src, interps, opts, *pid) {
            Ok(Some(f)) => found.push(f),
            Ok(None) => {}
            Err(_) => unreadable += 1,
        }
    }
    let processes = sample_all(src, found, opts);
    Ok(Report {
        schema: SCHEMA,
        window_ms: opts.window.as_millis() as u64,
        scanned: pids.len() as u64,
        groups: group(processes),
        unreadable: Unreadable {
            count: unreadable,
            hint: (unreadable > 0).then(|| match opts.viewer {
                Viewer::Everything => format!("{unreadable} processes could not be read; run as root to see them"),
                Viewer::Uid(_) => format!("the service could not read {unreadable} processes (its sandbox hides them); run `sudo binfmtd ps` for the full view"),
            }),
        },
    })
}

/// Looks at one PID for `doctor --pid`: the errors say why it cannot be diagnosed.
pub fn inspect(
    src: &dyn ProcSource,
    interps: &Interpreters,
    opts: &ScanOptions,
    pid: i32,
) -> Result<Process, ProcsError> {
    let exe = match src.exe(pid) {
        Ok(e) => e,
        Err(Miss::Denied) => return Err(ProcsError::Denied { pid }),
        Err(Miss::Gone) if src.process(pid).is_ok() => {
            String::from("(no executable: a kernel thread)")
        }
        Err(Miss::Gone) => return Err(ProcsError::NoSuchPid { pid }),
    };
    match find(src, interps, opts, pid) {
        Ok(Some(f)) => sample_all(src, vec![f], opts)
            .pop()
            .ok_or(ProcsError::NoSuchPid { pid }),
        Ok(None) if src.process(pid) == Err(Miss::Gone) => Err(ProcsError::NoSuchPid { pid }),
        Ok(None) => Err(ProcsError::NotEmulated { pid, exe }),
        Err(_) => Err(ProcsError::Denied { pid }),
    }
}

fn sample_all(src: &dyn ProcSource, found: Vec<Found>, opts: &ScanOptions) -> Vec<Process> {
    let first: Vec<Option<Vec<ThreadSample>>> =
        found.iter().map(|f| src.threads(f.pid).ok()).collect();
    let second: Vec<Option<Vec<ThreadSample>>> = if opts.window.is_zero() || found.is_empty() {
        found.iter().map(|_| None).collect()
    } else {
        std::thread::sleep(opts.window);
        found.iter().map(|f| src.threads(f.pid).ok()).collect()
    };
    let now = src.clock_ms();
    let mut out = Vec::new();
    for ((f, a), b) in found.into_iter().zip(first).zip(second) {
        // Gone between finding and sampling: skipped.
        let Some(a) = a else { continue };
        if !opts.window.is_zero() && b.is_none() {
            continue;
        }
        out.push(build(src, f, &a, b.as_deref(), now, opts));
    }
    out
}

fn build(
    src: &dyn ProcSource,
    f: Found,
    a: &[ThreadSample],
    b: Option<&[ThreadSample]>,
    now: Option<f64>,
    opts: &ScanOptions,
) -> Process {
    let window_ms = opts.window.as_millis() as u64;
    let hz = src.ticks_per_second();
    let threads: Vec<Thread> = match b {
        Some(b) => b
            .iter()
            .filter_map(|t2| {
                a.iter()
                    .find(|t1| t1.tid == t2.tid)
                    .map(|t1| (t1, Some(t2)))
            })
            .map(|(t1, t2)| thread(src, f.pid, t1, t2, now, window_ms, hz, &opts.host_arch))
            .collect(),
        None => a
            .iter()
            .map(|t| thread(src, f.pid, t, None, now, 0, hz, &opts.host_arch))
            .collect(),
    };
    let class = classify::process(&threads.iter().map(|t| t.class).collect::<Vec<_>>());
    let summary = describe(class, &threads, window_ms);
    Process {
        pid: f.pid,
        uid: f.raw.uids[1],
        comm: f.raw.comm,
        container: f.container,
        emulator: Emulator {
            handler: f.known.handler.clone(),
            translator: f.known.translator,
            version: src.emulator_version(f.pid, &f.exe, f.known.translator),
            path: f.exe,
        },
        guest: f.guest,
        class,
        summary,
        threads,
    }
}

/// Calls whose first argument is a file descriptor worth naming.
const FD_CALLS: &[&str] = &[
    "read", "write", "readv", "writev", "pread64", "pwrite64", "recvfrom", "sendto", "recvmsg",
    "sendmsg", "accept", "accept4", "connect", "flock", "fsync", "ioctl",
];

#[allow(clippy::too_many_arguments)]
fn thread(
    src: &dyn ProcSource,
    pid: i32,
    a: &ThreadSample,
    b: Option<&ThreadSample>,
    now: Option<f64>,
    window_ms: u64,
    hz: u64,
    arch: &str,
) -> Thread {
    let last = b.unwrap_or(a);
    let class = classify::thread(a, b, window_ms, hz);
    let call = classify::syscall_of(last);
    let syscall = call.as_ref().map(|(nr, _)| {
        crate::doctor::syscalls::name(arch, *nr)
            .map(str::to_string)
            .unwrap_or_else(|| format!("syscall {nr}"))
    });
    let waits_on = match (&syscall, &call) {
        (Some(name), Some((_, args))) if FD_CALLS.contains(&name.as_str()) => args
            .first()
            .and_then(|fd| src.fd_target(pid, *fd))
            .map(|t| match t.split(':').next() {
                Some("pipe") => "pipe".to_string(),
                Some("socket") => "socket".to_string(),
                _ => t,
            }),
        _ => None,
    };
    let off_cpu = matches!(class, Class::Blocked | Class::Stopped | Class::Zombie);
    let measured = match (off_cpu, now, last.exec_start_ms) {
        (true, Some(n), Some(s)) if n >= s => Some((n - s) as u64),
        _ => None,
    };
    Thread {
        tid: last.tid,
        state: last.state.to_string(),
        class,
        syscall,
        waits_on,
        wchan: last.wchan.clone(),
        cpu_percent: b.map(|b| (classify::cpu_percent(a, b, window_ms, hz) * 10.0).round() / 10.0),
        in_state_ms: measured.max(b.map(|_| window_ms)).or(measured),
        at_least: measured.is_none(),
    }
}

/// Seconds for humans: "42 s", "at least 1 s", "3 min".
pub fn duration(ms: u64, at_least: bool) -> String {
    let s = ms / 1000;
    let text = if s >= 120 {
        format!("{} min", s / 60)
    } else if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{s} s")
    };
    if at_least {
        format!("at least {text}")
    } else {
        text
    }
}

/// The one-line verdict: "blocked in futex for 42 s in all 12 threads; no CPU progress".
pub fn describe(class: Class, threads: &[Thread], window_ms: u64) -> String {
    let n = threads.len();
    let of = |k: usize| {
        if k == n {
            format!("all {n} threads")
        } else {
            format!("{k} of {n} threads")
        }
    };
    match class {
        Class::Blocked => {
            let mut calls: BTreeMap<String, (usize, u64, bool)> = BTreeMap::new();
            for t in threads {
                let what = match (&t.syscall, &t.waits_on) {
                    (Some(s), Some(w)) => format!("{s} ({w})"),
                    (Some(s), None) => s.clone(),
                    _ => "an unnamed wait".into(),
                };
                let e = calls.entry(what).or_insert((0, u64::MAX, false));
                e.0 += 1;
                if let Some(ms) = t.in_state_ms {
                    e.1 = e.1.min(ms);
                }
                e.2 |= t.at_least;
            }
            let parts: Vec<String> = calls
                .into_iter()
                .map(|(what, (k, ms, least))| match ms {
                    u64::MAX => format!("blocked in {what} in {}", of(k)),
                    ms => format!("blocked in {what} for {} in {}", duration(ms, least), of(k)),
                })
                .collect();
            let progress = if window_ms > 0 {
                "; no CPU progress"
            } else {
                ""
            };
            format!("{}{progress}", parts.join(", "))
        }
        Class::Spinning => {
            let k = threads
                .iter()
                .filter(|t| t.class == Class::Spinning)
                .count();
            let cpu: f64 = threads.iter().filter_map(|t| t.cpu_percent).sum();
            format!(
                "spinning: {} burning {cpu:.0}% CPU with no syscalls for {}",
                of(k),
                duration(window_ms, true)
            )
        }
        Class::Stopped => format!(
            "stopped or traced ({})",
            of(threads.iter().filter(|t| t.class == Class::Stopped).count())
        ),
        Class::Zombie => "zombie: exited, not yet reaped by its parent".into(),
        Class::Running => format!(
            "running ({} on a CPU; one pass, progress not measured)",
            of(threads.iter().filter(|t| t.class == Class::Running).count())
        ),
        Class::Healthy => "healthy: making progress".into(),
    }
}

fn group(processes: Vec<Process>) -> Vec<Group> {
    let mut by: BTreeMap<Option<Container>, Vec<Process>> = BTreeMap::new();
    for p in processes {
        by.entry(p.container.clone()).or_default().push(p);
    }
    by.into_iter()
        .map(|(container, processes)| Group {
            container,
            processes,
        })
        .collect()
}

#[cfg(test)]
mod tests;
