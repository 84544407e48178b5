//! Verification after install: read each entry back, then run its ISA's probe through it.

use crate::model::{Entry, Rule};
use crate::probe::batch::{self, Setup};
use crate::probe::run::ProbeOutcome;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// Verification of one handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// The kernel entry reads back exactly as registered.
    pub read_back: bool,
    pub read_back_detail: Option<String>,
    /// The entry the kernel picks for this ISA is this one.
    pub wins: bool,
    pub probe: Option<ProbeOutcome>,
    /// The probe ran chrooted in an empty directory (so the F flag is proven).
    pub chrooted: bool,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.read_back && self.probe.as_ref().is_none_or(ProbeOutcome::passed)
    }
}

/// Compares a rule with what the kernel reports under its name.
pub fn read_back(rule: &Rule, entries: &[Entry]) -> (bool, Option<String>) {
    match entries.iter().find(|e| e.name == rule.name) {
        None => (
            false,
            Some(format!(
                "entry {} is not in binfmt_misc after registering",
                rule.name
            )),
        ),
        Some(e) if !rule.same_as(e) => (
            false,
            Some(format!(
                "entry {} reads back as interpreter {} flags {:?}, expected {} flags {:?}",
                e.name,
                e.interpreter.display(),
                e.flags.to_string(),
                rule.interpreter.display(),
                rule.flags.effective().to_string()
            )),
        ),
        Some(e) if !e.enabled => (false, Some(format!("entry {} is disabled", e.name))),
        Some(_) => (true, None),
    }
}

/// True when this process may chroot (root, or root in its user namespace).
pub fn can_chroot() -> bool {
    crate::privilege::has(caps::Capability::CAP_SYS_CHROOT)
}

/// What a round of probes found.
#[derive(Debug, Clone, Default)]
pub struct Probed {
    pub outcomes: Vec<(String, ProbeOutcome)>,
    /// The probes ran chrooted in an empty directory (so F is proven).
    pub chrooted: bool,
    pub took: Duration,
}

/// The seam around running probes: the real one execs them through the kernel; tests
/// substitute scripted outcomes.
pub trait Prober: Send + Sync {
    /// Runs the probe of every arch, through whatever handler the kernel picks.
    fn probe(&self, arches: &[String]) -> Probed;
}

/// Runs the real probes, staged under a directory.
#[derive(Debug, Clone)]
pub struct SystemProber {
    pub dir: std::path::PathBuf,
}

impl Prober for SystemProber {
    fn probe(&self, arches: &[String]) -> Probed {
        let (outcomes, chrooted, took) = run_probes(arches, &self.dir);
        Probed {
            outcomes,
            chrooted,
            took,
        }
    }
}

/// Runs the probes of several arches in parallel, chrooted where possible.
pub fn run_probes(
    arches: &[String],
    probe_dir: &Path,
) -> (Vec<(String, ProbeOutcome)>, bool, Duration) {
    let chroot = can_chroot();
    let start = Instant::now();
    let setup = if chroot { Setup::Chroot } else { Setup::Direct };
    let out = batch::run(arches, probe_dir, setup, Duration::from_secs(10));
    (out, chroot, start.elapsed())
}
