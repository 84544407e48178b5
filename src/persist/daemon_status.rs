//! What the daemon last verified and repaired, written after every change and reconcile to
//! `<state dir>/daemon-status.json`, so that readiness checks and `binfmtd metrics` answer
//! from it without running probes.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file name inside the state directory.
pub const FILE: &str = "daemon-status.json";

/// One platform as the daemon last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformState {
    pub platform: String,
    /// The entry that serves it (`null` for a native platform).
    pub handler: Option<String>,
    /// `native` or `emulated`.
    pub how: String,
    /// An enabled entry of the kernel serves it (always true for native).
    pub registered: bool,
    /// Its probe passed in the last verification (always true for native).
    pub verified: bool,
}

/// A handler the last reconcile could not keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedHandler {
    pub handler: String,
    pub platform: String,
    pub message: String,
}

/// An interpreter in use, with its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterpreterState {
    pub handler: String,
    pub path: String,
    pub version: Option<String>,
}

/// The daemon's record (schema `binfmtd.daemon-status/v1`). Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub schema: String,
    pub version: String,
    /// The daemon's process id (as seen in its own PID namespace).
    pub pid: u32,
    /// When this record was written.
    pub updated: f64,
    /// When the platforms were last verified, and how long their probes took.
    pub verified_at: Option<f64>,
    pub probe_seconds: Option<f64>,
    pub platforms: Vec<PlatformState>,
    /// Entries (re-)registered by reconciling the desired state: at start, after drift.
    pub repairs_total: u64,
    pub last_repair: Option<f64>,
    pub last_reconcile: Option<f64>,
    /// What the last reconcile could not keep.
    pub failed: Vec<FailedHandler>,
    pub interpreters: Vec<InterpreterState>,
}

impl Default for DaemonStatus {
    fn default() -> Self {
        DaemonStatus {
            schema: "binfmtd.daemon-status/v1".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            updated: now(),
            verified_at: None,
            probe_seconds: None,
            platforms: Vec::new(),
            repairs_total: 0,
            last_repair: None,
            last_reconcile: None,
            failed: Vec::new(),
            interpreters: Vec::new(),
        }
    }
}

/// The current time in Unix seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The record's path in a state directory.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Why the record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no daemon status at {0}: the binfmtd daemon has not run with this state directory (start `binfmtd daemon`)")]
    Missing(PathBuf),
    #[error("cannot read the daemon status {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the daemon status {path} is not valid: {source}; the daemon rewrites it at its next check"
    )]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Reads the record the daemon wrote.
pub fn load(state_dir: &Path) -> Result<DaemonStatus, StatusError> {
    let p = path(state_dir);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StatusError::Missing(p)),
        Err(source) => return Err(StatusError::Read { path: p, source }),
    };
    serde_json::from_str(&text).map_err(|source| StatusError::Corrupt { path: p, source })
}

/// Replaces the record atomically (readers see the old or the new one, never a part).
pub fn save(state_dir: &Path, status: &DaemonStatus) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    super::atomic::write(&path(state_dir), &text, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path()), Err(StatusError::Missing(_))));
        // A time a double holds exactly: serde_json may read other values back one ulp off.
        let mut s = DaemonStatus {
            repairs_total: 3,
            updated: 1_700_000_000.5,
            ..Default::default()
        };
        s.platforms.push(PlatformState {
            platform: "linux/arm64".into(),
            handler: Some("qemu-aarch64".into()),
            how: "emulated".into(),
            registered: true,
            verified: true,
        });
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path()).unwrap(), s);
        std::fs::write(path(dir.path()), "{").unwrap();
        assert!(matches!(load(dir.path()), Err(StatusError::Corrupt { .. })));
    }
}
