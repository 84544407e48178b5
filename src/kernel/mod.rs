//! The only code that touches binfmt_misc: a narrow trait, and its procfs implementation.

pub mod codec;
pub mod mount;
pub mod procfs;

use crate::model::{Entry, Rule};
use serde::Serialize;
use std::path::PathBuf;

pub use procfs::ProcBinfmt;

/// Where binfmt_misc is mounted unless configured otherwise (`BINFMTD_BINFMT_MISC`).
pub const DEFAULT_PATH: &str = "/proc/sys/fs/binfmt_misc";

/// What can go wrong talking to binfmt_misc; each message names the path and the remedy.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("binfmt_misc is not mounted at {0}; mount it with `mount -t binfmt_misc binfmt_misc {0}` or run as root so binfmtd can mount it")]
    NotMounted(PathBuf),
    #[error("this kernel has no binfmt_misc support (not listed in /proc/filesystems); load it with `modprobe binfmt_misc`")]
    Unsupported,
    #[error("the kernel refused register line {line:?} at {path}: {errno} ({hint})")]
    Refused {
        path: PathBuf,
        line: String,
        errno: nix::errno::Errno,
        hint: &'static str,
    },
    #[error("permission denied writing {path}: {hint}")]
    Permission { path: PathBuf, hint: String },
    #[error("no binfmt_misc entry named {name:?} under {dir}")]
    NoSuchEntry { dir: PathBuf, name: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Encode(#[from] codec::EncodeError),
    #[error(transparent)]
    Parse(#[from] codec::ParseError),
    #[error("cannot mount binfmt_misc at {path}: {errno}; {hint}")]
    Mount {
        path: PathBuf,
        errno: nix::errno::Errno,
        hint: &'static str,
    },
}

/// What can be done to a single entry (the values written to its file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryAction {
    Enable,
    Disable,
    Remove,
}

impl EntryAction {
    /// The text the kernel expects for this action.
    pub fn as_kernel_str(self) -> &'static str {
        match self {
            EntryAction::Enable => "1",
            EntryAction::Disable => "0",
            EntryAction::Remove => "-1",
        }
    }
}

/// A snapshot of one binfmt_misc instance.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub path: PathBuf,
    pub mounted: bool,
    pub enabled: bool,
    /// Entries newest first: the order in which the kernel tries them.
    pub entries: Vec<Entry>,
    /// Entry files that could not be parsed (name, reason).
    pub unreadable: Vec<(String, String)>,
}

/// The seam around binfmt_misc. The real implementation is [`ProcBinfmt`]; tests substitute
/// an in-memory one.
pub trait Binfmt {
    /// The mount point this instance lives at.
    fn path(&self) -> PathBuf;
    /// Reads the status and every entry, newest first.
    fn snapshot(&self) -> Result<Snapshot, KernelError>;
    /// Writes one validated rule to `register`.
    fn register(&self, rule: &Rule) -> Result<(), KernelError>;
    /// Enables, disables or removes one entry.
    fn act(&self, name: &str, action: EntryAction) -> Result<(), KernelError>;
    /// Enables or disables the whole instance via `status`.
    fn set_enabled(&self, enabled: bool) -> Result<(), KernelError>;
    /// Mounts the instance when it is absent; true when it was mounted now.
    fn ensure_mounted(&self) -> Result<bool, KernelError>;
}

/// An in-memory binfmt_misc that behaves like the kernel's list: new entries go first,
/// duplicate names fail with EEXIST. Used by unit tests of planning and apply logic.
#[derive(Debug, Default)]
pub struct MemoryBinfmt {
    pub state: std::sync::Mutex<(bool, Vec<Entry>)>,
}

impl MemoryBinfmt {
    pub fn new(entries: Vec<Entry>) -> Self {
        MemoryBinfmt {
            state: std::sync::Mutex::new((true, entries)),
        }
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, Vec<Entry>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Binfmt for MemoryBinfmt {
    fn path(&self) -> PathBuf {
        PathBuf::from("memory:")
    }
    fn snapshot(&self) -> Result<Snapshot, KernelError> {
        let s = self.lock();
        Ok(Snapshot {
            path: self.path(),
            mounted: true,
            enabled: s.0,
            entries: s.1.clone(),
            unreadable: vec![],
        })
    }
    fn register(&self, rule: &Rule) -> Result<(), KernelError> {
        let line = codec::encode(rule)?;
        let mut s = self.lock();
        if s.1.iter().any(|e| e.name == rule.name) {
            return Err(KernelError::Refused {
                path: self.path(),
                line,
                errno: nix::errno::Errno::EEXIST,
                hint: procfs::errno_hint(nix::errno::Errno::EEXIST),
            });
        }
        s.1.insert(0, Entry::registered(rule));
        Ok(())
    }
    fn act(&self, name: &str, action: EntryAction) -> Result<(), KernelError> {
        let mut s = self.lock();
        let idx =
            s.1.iter()
                .position(|e| e.name == name)
                .ok_or_else(|| KernelError::NoSuchEntry {
                    dir: PathBuf::from("memory:"),
                    name: name.into(),
                })?;
        match action {
            EntryAction::Enable => s.1[idx].enabled = true,
            EntryAction::Disable => s.1[idx].enabled = false,
            EntryAction::Remove => {
                s.1.remove(idx);
            }
        }
        Ok(())
    }
    fn set_enabled(&self, enabled: bool) -> Result<(), KernelError> {
        self.lock().0 = enabled;
        Ok(())
    }
    fn ensure_mounted(&self) -> Result<bool, KernelError> {
        Ok(false)
    }
}
