//! Readiness from the daemon's last verification (`platforms --require`, `--max-age`): no
//! probe runs; the kernel's entries are only listed, to notice one that vanished since.

use crate::model::Entry;
use crate::persist::cache::Cache;
use crate::persist::daemon_status::{DaemonStatus, InterpreterState, PlatformState};
use serde::Serialize;

/// One required platform.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Required {
    pub platform: String,
    pub handler: Option<String>,
    pub ok: bool,
    /// Why it is not ready (`null` when it is).
    pub reason: Option<String>,
}

/// What `platforms --require/--max-age` reports (`binfmtd.ready/v1`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Readiness {
    pub schema: &'static str,
    pub ready: bool,
    pub daemon_pid: u32,
    pub daemon_alive: bool,
    /// Seconds since the daemon last wrote its record.
    pub age_seconds: f64,
    pub required: Vec<Required>,
    /// Everything that makes it not ready, one sentence each.
    pub problems: Vec<String>,
}

/// What the check looks at (gathered by the caller).
pub struct ReadyInput<'a> {
    pub status: &'a DaemonStatus,
    /// Required platforms in OCI form.
    pub platforms: &'a [String],
    /// The kernel's entries now.
    pub entries: &'a [Entry],
    pub now: f64,
    pub max_age: Option<f64>,
    pub daemon_alive: bool,
}

fn one(input: &ReadyInput, platform: &str) -> Required {
    let found = input
        .status
        .platforms
        .iter()
        .find(|p| p.platform == platform);
    let handler = found.and_then(|p| p.handler.clone());
    let reason = match found {
        None => Some(format!(
            "{platform} is not registered (the daemon's last verification does not list it)"
        )),
        Some(p) if !p.registered => Some(format!("{platform} is not registered")),
        Some(p) if !p.verified => Some(format!(
            "{platform}: the probe through {} failed in the daemon's last verification",
            p.handler.as_deref().unwrap_or("its handler")
        )),
        Some(p) => {
            p.handler
                .as_ref()
                .and_then(|h| match input.entries.iter().find(|e| &e.name == h) {
                    None => Some(format!(
                    "{platform}: entry {h} is gone from binfmt_misc since the daemon verified it"
                )),
                    Some(e) if !e.enabled => Some(format!("{platform}: entry {h} is disabled")),
                    Some(_) => None,
                })
        }
    };
    Required {
        platform: platform.to_string(),
        handler,
        ok: reason.is_none(),
        reason,
    }
}

/// Decides readiness (pure).
pub fn decide(input: &ReadyInput) -> Readiness {
    let age = (input.now - input.status.updated).max(0.0);
    let mut problems = Vec::new();
    if !input.daemon_alive {
        problems.push(format!(
            "the daemon (pid {}) that wrote the record is not running",
            input.status.pid
        ));
    }
    if let Some(max) = input.max_age.filter(|m| age > *m) {
        problems.push(format!(
            "the daemon's record is {age:.0}s old, more than {max:.0}s (run the daemon with --check-interval below that)"
        ));
    }
    let required: Vec<Required> = input.platforms.iter().map(|p| one(input, p)).collect();
    problems.extend(required.iter().filter_map(|r| r.reason.clone()));
    Readiness {
        schema: "binfmtd.ready/v1",
        ready: problems.is_empty(),
        daemon_pid: input.status.pid,
        daemon_alive: input.daemon_alive,
        age_seconds: age,
        required,
        problems,
    }
}

/// A verification in the record's terms: every platform (native, passed, broken) and the
/// interpreters in use with their versions from the fact cache (no process is started).
pub fn record_of(
    report: &super::PlatformsReport,
    cache: &Cache,
) -> (Vec<PlatformState>, Vec<InterpreterState>) {
    let mut interpreters: Vec<InterpreterState> = Vec::new();
    let mut platforms = Vec::new();
    for d in report.details.iter().chain(&report.broken) {
        if let (Some(h), Some(i)) = (&d.handler, &d.interpreter) {
            if !interpreters.iter().any(|x| &x.handler == h) {
                let version = cache
                    .interpreters
                    .get(std::path::Path::new(i))
                    .and_then(|(_, info)| info.version.clone());
                interpreters.push(InterpreterState {
                    handler: h.clone(),
                    path: i.clone(),
                    version,
                });
            }
        }
        platforms.push(PlatformState {
            platform: d.platform.clone(),
            handler: d.handler.clone(),
            how: d.how.to_string(),
            registered: true,
            verified: d.verified,
        });
    }
    (platforms, interpreters)
}

/// True when `pid` runs a program named binfmtd in this PID namespace.
pub fn daemon_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "binfmtd")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flags, Matcher};
    use crate::persist::daemon_status::PlatformState;

    fn status() -> DaemonStatus {
        let p = |platform: &str, handler: Option<&str>, verified: bool| PlatformState {
            platform: platform.into(),
            handler: handler.map(String::from),
            how: if handler.is_some() {
                "emulated"
            } else {
                "native"
            }
            .into(),
            registered: true,
            verified,
        };
        DaemonStatus {
            updated: 1000.0,
            platforms: vec![
                p("linux/amd64", None, true),
                p("linux/arm64", Some("qemu-aarch64"), true),
                p("linux/s390x", Some("qemu-s390x"), false),
            ],
            ..Default::default()
        }
    }

    fn entry(name: &str, enabled: bool) -> Entry {
        Entry {
            name: name.into(),
            enabled,
            interpreter: "/q".into(),
            flags: Flags::default(),
            matcher: Matcher::Extension {
                extension: "x".into(),
            },
        }
    }

    #[test]
    fn table() {
        let s = status();
        let live = [entry("qemu-aarch64", true), entry("qemu-s390x", true)];
        let off = [entry("qemu-aarch64", false)];
        #[allow(clippy::type_complexity)]
        let cases: &[(&[&str], &[Entry], f64, Option<f64>, bool, bool, &str)] = &[
            (
                &["linux/arm64", "linux/amd64"],
                &live,
                1010.0,
                Some(60.0),
                true,
                true,
                "",
            ),
            (
                &["linux/s390x"],
                &live,
                1010.0,
                None,
                true,
                false,
                "probe through qemu-s390x failed",
            ),
            (
                &["linux/riscv64"],
                &live,
                1010.0,
                None,
                true,
                false,
                "not registered",
            ),
            (
                &["linux/arm64"],
                &[],
                1010.0,
                None,
                true,
                false,
                "gone from binfmt_misc",
            ),
            (
                &["linux/arm64"],
                &off,
                1010.0,
                None,
                true,
                false,
                "disabled",
            ),
            (
                &["linux/arm64"],
                &live,
                1100.0,
                Some(60.0),
                true,
                false,
                "100s old",
            ),
            (
                &["linux/arm64"],
                &live,
                1010.0,
                None,
                false,
                false,
                "not running",
            ),
            (&[], &live, 1010.0, Some(60.0), true, true, ""),
        ];
        for (want, entries, now, max_age, alive, ready, problem) in cases {
            let platforms: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            let r = decide(&ReadyInput {
                status: &s,
                platforms: &platforms,
                entries,
                now: *now,
                max_age: *max_age,
                daemon_alive: *alive,
            });
            assert_eq!(r.ready, *ready, "{want:?}: {r:?}");
            assert!(r.problems.join(" ").contains(problem), "{want:?}: {r:?}");
        }
    }
}
