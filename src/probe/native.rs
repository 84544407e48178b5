//! Decides which ISAs the CPU runs natively by executing probes with no binfmt_misc handlers.

use super::run::ProbeOutcome;
use super::sweep::{self, Place};
use crate::kernel::{Binfmt, Snapshot};
use std::time::Duration;

/// Why native probing could not be done.
#[derive(Debug, thiserror::Error)]
pub enum NativeProbeError {
    #[error("cannot create a private binfmt_misc instance to probe native ISAs: {0}; unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces) or the kernel is older than 6.7")]
    NoPrivateInstance(String),
}

/// Runs every arch's probe in an empty private instance: (arch, runs natively).
pub fn run_native_probes(arches: &[String]) -> Result<Vec<(String, bool)>, NativeProbeError> {
    if arches.is_empty() {
        return Ok(Vec::new());
    }
    crate::sys::ns::check_private_instance()
        .map_err(|e| NativeProbeError::NoPrivateInstance(e.to_string()))?;
    let outcomes = sweep::run(arches, Place::EmptyInstance, Duration::from_secs(5));
    // ENOEXEC is the answer "the CPU cannot run this"; any other exec failure means the
    // private instance itself could not be set up, and then no answer is an answer.
    if let Some((_, o)) = outcomes.iter().find(|(_, o)| setup_failed(o)) {
        return Err(NativeProbeError::NoPrivateInstance(o.describe()));
    }
    Ok(outcomes
        .into_iter()
        .filter(|(_, o)| !refused(o))
        .map(|(a, o)| (a, o.passed()))
        .collect())
}

/// The probe ran but a seccomp filter of ours killed it (SIGSYS): e.g. the service's
/// `SystemCallArchitectures=native` refuses i386 system calls to its own children, which
/// says nothing about what the CPU and kernel run for everyone else. No answer.
fn refused(o: &ProbeOutcome) -> bool {
    matches!(o, ProbeOutcome::Signal { signal, .. } if *signal == libc::SIGSYS)
}

/// An exec failure other than ENOEXEC: the probe never reached the CPU or a handler.
fn setup_failed(o: &ProbeOutcome) -> bool {
    matches!(o, ProbeOutcome::ExecFailed { errno, .. } if *errno != libc::ENOEXEC)
}

/// The arches whose probe no enabled entry of `snapshot` would take: run directly, only the
/// CPU itself can run them. Without a snapshot (unreadable instance) every arch with a
/// probe counts; a disabled instance takes nothing.
pub fn unhandled_arches(arches: &[String], snapshot: Option<&Snapshot>) -> Vec<String> {
    arches
        .iter()
        .filter(|a| {
            let Some(bytes) = super::exit_program(a, super::run::PROBE_EXIT_CODE) else {
                return false;
            };
            snapshot.is_none_or(|s| {
                crate::kernel::codec::winner(&s.entries, s.enabled, &bytes, Some("probe")).is_none()
            })
        })
        .cloned()
        .collect()
}

/// Runs these probes directly in the current instance: (arch, ran). Probes that could not
/// be executed at all are left out.
pub fn run_direct_probes(arches: &[String]) -> Vec<(String, bool)> {
    sweep::run(arches, Place::Direct, Duration::from_secs(5))
        .into_iter()
        .filter(|(_, o)| !setup_failed(o) && !refused(o))
        .map(|(a, o)| (a, o.passed()))
        .collect()
}

/// Runs, directly in `kernel`'s instance, the probes of the ISAs that no enabled entry
/// would take: whatever runs then runs on the CPU itself. Arches some entry would take are
/// left out (their answer would be the emulator's). Used when private instances are not
/// available (e.g. under the daemon's RestrictNamespaces=).
pub fn run_unhandled_probes(arches: &[String], kernel: &dyn Binfmt) -> Vec<(String, bool)> {
    let snapshot = kernel.snapshot().ok();
    run_direct_probes(&unhandled_arches(arches, snapshot.as_ref()))
}
