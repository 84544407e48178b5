//! What running a probe program can end in (see `batch` for running them).

use serde::Serialize;

/// The exit code every probe is built to return.
pub const PROBE_EXIT_CODE: u8 = 42;

/// What happened when a probe was executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// Exited with the expected code: the ISA runs (natively or through binfmt_misc).
    Passed,
    /// Exited with another code.
    WrongExit { code: i32 },
    /// Killed by a signal (e.g. SIGSEGV, SIGILL inside the emulator).
    Signal { signal: i32, name: String },
    /// execve failed: ENOEXEC means no handler matched.
    ExecFailed { errno: i32, error: String },
    /// Did not finish in time and was killed.
    Timeout { seconds: u64 },
    /// No probe exists for this ISA.
    NoProbe,
    /// This identical entry, with the same interpreter file, passed earlier this boot.
    PassedEarlier,
}

impl ProbeOutcome {
    pub fn passed(&self) -> bool {
        matches!(self, ProbeOutcome::Passed | ProbeOutcome::PassedEarlier)
    }

    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            ProbeOutcome::Passed => "probe exited 42 as expected".into(),
            ProbeOutcome::WrongExit { code } => {
                format!("probe exited {code}, expected {PROBE_EXIT_CODE}")
            }
            ProbeOutcome::Signal { name, .. } => format!("probe was killed by {name}"),
            ProbeOutcome::ExecFailed { error, .. } => format!("exec of the probe failed: {error}"),
            ProbeOutcome::Timeout { seconds } => format!("probe did not exit within {seconds}s"),
            ProbeOutcome::NoProbe => "binfmtd has no probe program for this ISA".into(),
            ProbeOutcome::PassedEarlier => {
                "probe passed earlier this boot through this identical entry".into()
            }
        }
    }
}

pub(crate) fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}
