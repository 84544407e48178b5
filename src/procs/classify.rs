//! What a thread and a process are doing, from one or two samples of /proc (pure).

use crate::doctor::syscalls::{self, SyscallState};
use serde::Serialize;

/// One reading of one thread.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadSample {
    pub tid: i32,
    /// Scheduler state letter (R, S, D, T, t, Z, X, I).
    pub state: char,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// The first line of `/proc/PID/task/TID/syscall`, if readable.
    pub syscall: Option<String>,
    pub wchan: Option<String>,
    /// `se.exec_start` from `/proc/PID/task/TID/sched`, in ms of the scheduler clock.
    pub exec_start_ms: Option<f64>,
}

/// The verdict on a thread or a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// In a syscall (named), no CPU used during the window.
    Blocked,
    /// Runnable and using most of a CPU during the window, not in a syscall.
    Spinning,
    /// Stopped by a signal or a tracer.
    Stopped,
    Zombie,
    /// Making progress: CPU used, or a different syscall at the end of the window.
    Healthy,
    /// On a CPU when read once (no window to measure progress in).
    Running,
}

impl Class {
    /// True for the classes `doctor --pid` reports as a problem.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            Class::Blocked | Class::Spinning | Class::Stopped | Class::Zombie
        )
    }
}

/// At least this share of one CPU over the window counts as burning CPU.
const SPIN_PERCENT: f64 = 50.0;

/// The syscall a sample is in, with its arguments.
pub fn syscall_of(s: &ThreadSample) -> Option<(u64, Vec<u64>)> {
    let text = s.syscall.as_deref()?;
    match syscalls::parse_proc_syscall(text)? {
        SyscallState::In(nr) => {
            let args = text
                .split_whitespace()
                .skip(1)
                .take(6)
                .filter_map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
                .collect();
            Some((nr, args))
        }
        _ => None,
    }
}

/// Share of one CPU used between two samples of `window_ms`.
pub fn cpu_percent(a: &ThreadSample, b: &ThreadSample, window_ms: u64, hz: u64) -> f64 {
    if window_ms == 0 || hz == 0 {
        return 0.0;
    }
    let ms = b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 * 1000.0 / hz as f64;
    (ms * 100.0 / window_ms as f64).min(100.0 * 64.0)
}

/// Classifies a thread from its first sample and, after `window_ms`, its second.
pub fn thread(a: &ThreadSample, b: Option<&ThreadSample>, window_ms: u64, hz: u64) -> Class {
    let last = b.unwrap_or(a);
    match last.state {
        'Z' | 'X' => return Class::Zombie,
        'T' | 't' => return Class::Stopped,
        _ => {}
    }
    let Some(b) = b else {
        return match a.state {
            'R' => Class::Running,
            _ if syscall_of(a).is_some() => Class::Blocked,
            _ => Class::Healthy,
        };
    };
    let used = b.cpu_ticks > a.cpu_ticks;
    let in_call = syscall_of(b);
    // Runnable at both ends and out of syscalls: burning CPU even when others share it.
    let runnable = a.state == 'R' && b.state == 'R' && syscall_of(a).is_none() && used;
    if in_call.is_none() && (runnable || cpu_percent(a, b, window_ms, hz) >= SPIN_PERCENT) {
        return Class::Spinning;
    }
    match (syscall_of(a), in_call) {
        (Some((x, _)), Some((y, _))) if x == y && !used && b.state != 'R' => Class::Blocked,
        _ => Class::Healthy,
    }
}

/// A process's class from its threads': zombie or stopped wins, then spinning; blocked only
/// when every thread is.
pub fn process(threads: &[Class]) -> Class {
    for c in [Class::Zombie, Class::Stopped, Class::Spinning] {
        if threads.contains(&c) {
            return c;
        }
    }
    if !threads.is_empty() && threads.iter().all(|c| *c == Class::Blocked) {
        return Class::Blocked;
    }
    if threads.contains(&Class::Running) {
        return Class::Running;
    }
    Class::Healthy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(state: char, ticks: u64, syscall: &str) -> ThreadSample {
        ThreadSample {
            tid: 1,
            state,
            cpu_ticks: ticks,
            syscall: (!syscall.is_empty()).then(|| syscall.to_string()),
            wchan: None,
            exec_start_ms: None,
        }
    }

    #[test]
    fn thread_table() {
        let futex = "202 0x7f10 0x80 0x2 0x0 0x0 0x0 0x7ffd 0x7f12";
        let read = "0 0x3 0x7ffd 0x1000 0x0 0x0 0x0 0x7ffd 0x7f12";
        let table = [
            (
                "blocked",
                s('S', 5, futex),
                Some(s('S', 5, futex)),
                Class::Blocked,
            ),
            (
                "woke and slept again",
                s('S', 5, futex),
                Some(s('S', 6, futex)),
                Class::Healthy,
            ),
            (
                "another call",
                s('S', 5, futex),
                Some(s('S', 5, read)),
                Class::Healthy,
            ),
            (
                "spinning",
                s('R', 0, "running"),
                Some(s('R', 90, "running")),
                Class::Spinning,
            ),
            (
                "busy a little",
                s('R', 0, "running"),
                Some(s('S', 10, read)),
                Class::Healthy,
            ),
            (
                "stopped",
                s('S', 0, futex),
                Some(s('T', 0, futex)),
                Class::Stopped,
            ),
            ("traced", s('t', 0, ""), None, Class::Stopped),
            ("zombie", s('Z', 0, ""), None, Class::Zombie),
            ("once, on a CPU", s('R', 0, "running"), None, Class::Running),
            ("once, in a call", s('S', 0, read), None, Class::Blocked),
            ("once, unreadable call", s('S', 0, ""), None, Class::Healthy),
        ];
        for (case, a, b, want) in table {
            assert_eq!(thread(&a, b.as_ref(), 1000, 100), want, "{case}");
        }
        assert_eq!(
            syscall_of(&s('S', 0, read)),
            Some((0, vec![3, 0x7ffd, 0x1000, 0, 0, 0]))
        );
        assert_eq!(
            cpu_percent(&s('R', 0, ""), &s('R', 50, ""), 1000, 100),
            50.0
        );
    }

    #[test]
    fn process_table() {
        use Class::*;
        assert_eq!(process(&[Blocked, Blocked]), Blocked);
        assert_eq!(process(&[Blocked, Healthy]), Healthy);
        assert_eq!(process(&[Blocked, Spinning]), Spinning);
        assert_eq!(process(&[Spinning, Stopped]), Stopped);
        assert_eq!(process(&[Zombie]), Zombie);
        assert_eq!(process(&[Blocked, Running]), Running);
        assert_eq!(process(&[]), Healthy);
        assert!(Blocked.is_problem() && !Healthy.is_problem() && !Running.is_problem());
    }
}
