//! A cache of facts that only change with a reboot or a package upgrade: native probe results
//! (keyed by boot id and kernel) and interpreter facts (keyed by file identity).

use crate::catalog::discover::{Interpreter, KnownInterpreters};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const CACHE_FILE: &str = "cache.json";

/// Bumped whenever cached facts were computed wrongly before, so that they are recomputed:
/// 2 = versions of Debian's `-binfmt-P` wrappers are their qemu's, no longer an error text.
const FORMAT: u32 = 2;

/// Identity of an interpreter file; any upgrade changes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

impl FileId {
    pub fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

/// The cached facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    /// [`FORMAT`] when written; a cache of another format is discarded.
    #[serde(default)]
    pub format: u32,
    pub boot_id: String,
    pub kernel: String,
    /// Probe arches and their native results.
    #[serde(default)]
    pub native: Option<Vec<(String, bool)>>,
    #[serde(default)]
    pub interpreters: BTreeMap<PathBuf, (FileId, Interpreter)>,
    /// Register lines whose probe passed (chrooted) this boot, with their interpreter's
    /// identity then: an identical owned entry need not start the emulator again.
    #[serde(default)]
    pub verified: BTreeMap<String, FileId>,
}

/// This boot's id; empty when unknown (then nothing is cached across runs).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Cache {
    /// Loads the cache for this boot and kernel from `dir`; anything else gives an empty one.
    pub fn load(dir: Option<&Path>, kernel: &str) -> Cache {
        let id = boot_id();
        let fresh = Cache {
            format: FORMAT,
            boot_id: id.clone(),
            kernel: kernel.to_string(),
            ..Default::default()
        };
        let Some(dir) = dir else { return fresh };
        match std::fs::read(dir.join(CACHE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Cache>(&b).ok())
        {
            Some(c)
                if !id.is_empty()
                    && c.format == FORMAT
                    && c.boot_id == id
                    && c.kernel == kernel =>
            {
                c
            }
            _ => fresh,
        }
    }

    /// Native results, if cached for exactly these arches.
    pub fn native_for(&self, arches: &[String]) -> Option<Vec<(String, bool)>> {
        let n = self.native.as_ref()?;
        (n.len() == arches.len() && n.iter().zip(arches).all(|((a, _), b)| a == b))
            .then(|| n.clone())
    }

    /// The cached interpreter facts, if the file is unchanged.
    pub fn interpreter(&self, path: &Path) -> Option<Interpreter> {
        let (id, i) = self.interpreters.get(path)?;
        (FileId::of(path).as_ref() == Some(id)).then(|| i.clone())
    }

    /// True when `line` passed its probe this boot and its interpreter is the same file.
    pub fn verified_earlier(&self, line: &str, interpreter: &Path) -> bool {
        self.verified
            .get(line)
            .is_some_and(|id| FileId::of(interpreter).as_ref() == Some(id))
    }

    /// Best effort save; a read-only state directory only costs speed.
    pub fn save(&self, dir: Option<&Path>) {
        let Some(dir) = dir else { return };
        if let Ok(text) = serde_json::to_vec(self) {
            if let Err(e) = super::atomic::write_with(
                &dir.join(CACHE_FILE),
                &text,
                0o644,
                super::atomic::Durability::Atomic,
            ) {
                tracing::debug!("cannot write cache in {}: {e}", dir.display());
            }
        }
    }
}

impl KnownInterpreters for Cache {
    fn known(&self, path: &Path) -> Option<Interpreter> {
        self.interpreter(path)
    }
}
