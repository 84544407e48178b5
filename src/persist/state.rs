//! Ownership state: the exact register line of every entry binfmtd created.

use super::desired::{DesiredError, Recorded};
use crate::kernel::codec;
use crate::model::Entry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";

/// One entry binfmtd registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedEntry {
    pub handler: String,
    pub platform: String,
    /// The register line written; ownership holds only while the kernel entry matches it.
    pub line: String,
    /// The binfmt.d file written for it by `--persist`, if any.
    #[serde(default)]
    pub persisted: Option<PathBuf>,
    /// While a replacement is under way: the line binfmtd registered before, so that a crash
    /// between recording the new line and writing it leaves the old entry binfmtd's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

impl OwnedEntry {
    /// True when the kernel entry is exactly what binfmtd registered (or, mid-replacement,
    /// what it registered before).
    pub fn matches(&self, entry: &Entry) -> bool {
        std::iter::once(&self.line)
            .chain(self.previous.as_ref())
            .any(|line| codec::decode(line).is_ok_and(|r| r.same_as(entry)))
    }
}

/// A registration under way, journaled before the kernel is touched: until it is verified,
/// the next run undoes it (removes `name` if it holds `line`, registers `restore` again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The entry being registered.
    pub name: String,
    /// Its register line.
    pub line: String,
    /// What state recorded for `name` before (binfmtd's earlier entry), if anything.
    #[serde(default)]
    pub before: Option<OwnedEntry>,
    /// Exact register lines of the entries removed to make room (another tool's, under
    /// force, or binfmtd's own being replaced), to put back if the change does not finish.
    #[serde(default)]
    pub restore: Vec<String>,
}

/// Everything binfmtd remembers between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Owned entries by entry name.
    #[serde(default)]
    pub entries: BTreeMap<String, OwnedEntry>,
    /// Registrations not yet verified (normally empty between runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Pending>,
}

impl State {
    /// True when binfmtd created this kernel entry and it is unchanged since.
    pub fn owns(&self, entry: &Entry) -> bool {
        self.entries
            .get(&entry.name)
            .is_some_and(|o| o.matches(entry))
    }
}

/// Problems with the state file; none of them stops binfmtd from working.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state directory {dir}: {source}; set --state-dir or BINFMTD_STATE_DIR to a writable directory")]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock {path}: {source}; the state directory must be writable: remount it read-write, or set --state-dir or BINFMTD_STATE_DIR to a writable directory")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write state file {path}: {source}; the state directory must be writable and have free space (or set --state-dir or BINFMTD_STATE_DIR)")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where state lives: a directory, or memory (the sandbox keeps nothing). Ownership
/// (`state.json`) and the desired state (`desired.toml`) share one lock.
#[derive(Debug)]
pub enum StateStore {
    Dir(PathBuf),
    Memory(std::sync::Mutex<(State, Recorded)>),
}

/// An exclusive lock over the state for the duration of one operation.
#[derive(Debug)]
pub struct StateLock {
    _file: Option<File>,
}

/// Result of loading: the state plus a warning when the file was unreadable.
#[derive(Debug)]
pub struct Loaded {
    pub state: State,
    pub warning: Option<String>,
}

impl StateStore {
    /// Takes the exclusive lock (blocks while another binfmtd operation runs).
    pub fn lock(&self) -> Result<StateLock, StateError> {
        let StateStore::Dir(dir) = self else {
            return Ok(StateLock { _file: None });
        };
        std::fs::create_dir_all(dir).map_err(|source| StateError::Dir {
            dir: dir.clone(),
            source,
        })?;
        let path = dir.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StateError::Lock {
                path: path.clone(),
                source,
            })?;
        file.lock()
            .map_err(|source| StateError::Lock { path, source })?;
        Ok(StateLock { _file: Some(file) })
    }

    /// Loads the state. A missing file is an empty state; a corrupt one is moved aside
    /// (`state.json.corrupt`) and reported, and binfmtd carries on without touching the kernel.
    pub fn load(&self) -> Loaded {
        self.load_inner(true)
    }

    /// Like [`StateStore::load`] for readers that hold no lock: a corrupt file is reported
    /// but left where it is.
    pub fn peek(&self) -> Loaded {
        self.load_inner(false)
    }

    fn load_inner(&self, move_aside: bool) -> Loaded {
        let dir = match self {
            StateStore::Dir(dir) => dir,
            StateStore::Memory(m) => {
                return Loaded {
                    state: m.lock().unwrap_or_else(|p| p.into_inner()).0.clone(),
                    warning: None,
                }
            }
        };
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Loaded {
                    state: State::default(),
                    warning: None,
                }
            }
            Err(e) => {
                return Loaded {
                    state: State::default(),
                    warning: Some(format!(
                    "cannot read state file {}: {e}; treating every entry as not owned by binfmtd",
                    path.display()
                )),
                }
            }
        };
        match serde_json::from_str::<State>(&text) {
            Ok(s) => Loaded {
                state: s,
                warning: None,
            },
            Err(e) => {
                let aside = dir.join(format!("{STATE_FILE}.corrupt"));
                let moved = move_aside && std::fs::rename(&path, &aside).is_ok();
                Loaded {
                    state: State::default(),
                    warning: Some(format!(
                        "state file {} is corrupt ({e}){}; kernel entries were left as they are and are now treated as not owned by binfmtd (remove binfmtd's entries by name with `binfmtd uninstall --force LIST`)",
                        path.display(),
                        if moved { format!(", moved aside to {}", aside.display()) } else { String::new() }
                    )),
                }
            }
        }
    }

    /// Saves the state atomically (a killed process leaves the old or the new file). The
    /// entries it records vanish at a power loss anyway, so it is not synced to disk.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        self.save_with(state, super::atomic::Durability::Atomic)
    }

    /// Saves the state and syncs it to disk: for changes that wrote something durable
    /// (binfmt.d files), whose ownership must survive a power loss too.
    pub fn save_synced(&self, state: &State) -> Result<(), StateError> {
        self.save_with(state, super::atomic::Durability::Synced)
    }

    fn save_with(
        &self,
        state: &State,
        durability: super::atomic::Durability,
    ) -> Result<(), StateError> {
        let dir = match self {
            StateStore::Dir(dir) => dir,
            StateStore::Memory(m) => {
                m.lock().unwrap_or_else(|p| p.into_inner()).0 = state.clone();
                return Ok(());
            }
        };
        let path = dir.join(STATE_FILE);
        let mut text = serde_json::to_vec_pretty(state).unwrap_or_default();
        text.push(b'\n');
        super::atomic::write_with(&path, &text, 0o644, durability)
            .map_err(|source| StateError::Write { path, source })
    }

    /// The recorded requests of the desired state (`desired.toml`); take [`Self::lock`]
    /// first when the record is to be changed.
    pub fn load_desired(&self) -> Result<Recorded, DesiredError> {
        match self {
            StateStore::Dir(dir) => Recorded::load(dir),
            StateStore::Memory(m) => Ok(m.lock().unwrap_or_else(|p| p.into_inner()).1.clone()),
        }
    }

    /// Saves the recorded requests atomically (hold [`Self::lock`]).
    pub fn save_desired(&self, record: &Recorded) -> Result<(), DesiredError> {
        match self {
            StateStore::Dir(dir) => record.save(dir),
            StateStore::Memory(m) => {
                m.lock().unwrap_or_else(|p| p.into_inner()).1 = record.clone();
                Ok(())
            }
        }
    }

    /// Starts writing the recorded requests: on disk only once [`PendingDesired::commit`]
    /// and its [`DesiredSync::wait`] are through (hold [`Self::lock`] meanwhile). In memory,
    /// at once.
    pub fn stage_desired(&self, record: &Recorded) -> Result<PendingDesired, DesiredError> {
        match self {
            StateStore::Dir(dir) => Ok(PendingDesired(Some(record.stage(dir)?))),
            StateStore::Memory(_) => {
                self.save_desired(record)?;
                Ok(PendingDesired(None))
            }
        }
    }

    /// Puts back a record read before a change that is being undone. An empty record
    /// removes the file instead (a missing file reads as empty), which needs no free space.
    pub fn put_back_desired(&self, record: &Recorded) -> Result<(), DesiredError> {
        match self {
            StateStore::Dir(dir) if *record == Recorded::default() => {
                let path = dir.join(super::desired::RECORD_FILE);
                match std::fs::remove_file(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(source) => Err(DesiredError::Write { path, source }),
                }
            }
            _ => self.save_desired(record),
        }
    }

    /// The directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            StateStore::Dir(d) => Some(d),
            StateStore::Memory(_) => None,
        }
    }
}

/// A `desired.toml` being written (see [`StateStore::stage_desired`]).
#[derive(Debug)]
pub struct PendingDesired(Option<(PathBuf, super::atomic::Staged)>);

/// A committed `desired.toml` whose rename is being synced.
#[derive(Debug)]
pub struct DesiredSync(Option<(PathBuf, super::atomic::DirSync)>);

impl PendingDesired {
    /// Waits until the new record is on disk and puts it in place.
    pub fn commit(self) -> Result<DesiredSync, DesiredError> {
        let Some((path, staged)) = self.0 else {
            return Ok(DesiredSync(None));
        };
        match staged.commit() {
            Ok(sync) => Ok(DesiredSync(Some((path, sync)))),
            Err(source) => Err(DesiredError::Write { path, source }),
        }
    }
}

impl DesiredSync {
    /// Waits until the rename is on disk too.
    pub fn wait(self) -> Result<(), DesiredError> {
        let Some((path, sync)) = self.0 else {
            return Ok(());
        };
        sync.wait()
            .map_err(|source| DesiredError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_and_corrupt_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::Dir(dir.path().join("s"));
        let _l = store.lock().unwrap();
        assert_eq!(store.load().state, State::default());
        let mut s = State::default();
        s.entries.insert(
            "qemu-aarch64".into(),
            OwnedEntry {
                handler: "qemu-aarch64".into(),
                platform: "linux/arm64".into(),
                line: r":qemu-aarch64:M::\x7f::/usr/bin/q:F".into(),
                persisted: None,
                previous: None,
            },
        );
        store.save(&s).unwrap();
        assert_eq!(store.load().state, s);
        std::fs::write(dir.path().join("s/state.json"), "{not json").unwrap();
        let l = store.load();
        assert_eq!(l.state, State::default());
        assert!(l.warning.unwrap().contains("corrupt"));
        assert!(dir.path().join("s/state.json.corrupt").exists());
    }

    #[test]
    fn ownership_requires_identical_entry() {
        let o = OwnedEntry {
            handler: "h".into(),
            platform: "p".into(),
            line: r":h:M::\x7f\x45::/usr/bin/q:FC".into(),
            persisted: None,
            previous: None,
        };
        let mut e = crate::kernel::codec::parse_entry(
            "h",
            "enabled\ninterpreter /usr/bin/q\nflags: OCF\noffset 0\nmagic 7f45\n",
        )
        .unwrap();
        assert!(o.matches(&e));
        e.interpreter = "/usr/bin/other".into();
        assert!(!o.matches(&e));
    }

    #[test]
    fn mid_replacement_the_previous_line_is_still_owned() {
        let old = r":h:M::\x7f\x45::/usr/bin/q:FC";
        let new = r":h:M::\x7f\x45::/usr/bin/q:F";
        let e = crate::kernel::codec::parse_entry(
            "h",
            "enabled\ninterpreter /usr/bin/q\nflags: OCF\noffset 0\nmagic 7f45\n",
        )
        .unwrap();
        let mut o = OwnedEntry {
            handler: "h".into(),
            platform: "p".into(),
            line: new.into(),
            persisted: None,
            previous: None,
        };
        assert!(!o.matches(&e));
        o.previous = Some(old.into());
        assert!(o.matches(&e));
    }
}
