//! Desired state: the admin's config (`/etc/binfmtd/binfmtd.toml` + `config.d/*.toml`) layered
//! with what Install/Uninstall/Enable/Disable recorded (`<state dir>/desired.toml`).
//!
//! Layering rules (pure, see [`Config::layer`] and [`effective`]): `platforms` accumulate over
//! files in order; `flags` and `persist` take the last value given; `prefer` merges per key.
//! Recorded requests win over the config: an Uninstall hides a configured platform until it is
//! installed again, and recorded install options win over the config's policy.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Name of the main config file inside the config directory.
pub const CONFIG_FILE: &str = "binfmtd.toml";
/// Drop-in directory inside the config directory.
pub const DROPIN_DIR: &str = "config.d";
/// Name of the recorded requests file inside the state directory.
pub const RECORD_FILE: &str = "desired.toml";
/// The key `all` is recorded under: "keep every available platform installed".
pub const ALL: &str = "all";

/// Problems reading or writing desired state; each names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error("cannot read {path}: {source}; fix its permissions or remove it")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid binfmtd config: {message}; see docs/dbus.md for the format")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}; the state directory must be writable and have free space (or set --state-dir or BINFMTD_STATE_DIR)")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One config file, or the merge of several.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Platforms (or handler names) to keep installed.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Flag policy for platforms installed without explicit flags (e.g. "OPF").
    #[serde(default)]
    pub flags: Option<String>,
    /// Whether to also write binfmt.d files.
    #[serde(default)]
    pub persist: Option<bool>,
    /// Per-platform preference, e.g. `"linux/amd64" = "rosetta"`.
    #[serde(default)]
    pub prefer: BTreeMap<String, String>,
}

impl Config {
    /// Layers `later` over `self` (pure).
    pub fn layer(mut self, later: Config) -> Config {
        for p in later.platforms {
            if !self.platforms.contains(&p) {
                self.platforms.push(p);
            }
        }
        if later.flags.is_some() {
            self.flags = later.flags;
        }
        if later.persist.is_some() {
            self.persist = later.persist;
        }
        self.prefer.extend(later.prefer);
        self
    }

    /// Loads `<dir>/binfmtd.toml` then `<dir>/config.d/*.toml` in file-name order.
    /// Missing files are fine; an unreadable or invalid file is an error.
    pub fn load(dir: &Path) -> Result<Config, DesiredError> {
        let mut files = vec![dir.join(CONFIG_FILE)];
        let dropins = dir.join(DROPIN_DIR);
        if let Ok(read) = std::fs::read_dir(&dropins) {
            let mut names: Vec<PathBuf> = read
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            names.sort();
            files.extend(names);
        }
        let mut merged = Config::default();
        for path in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(DesiredError::Read { path, source }),
            };
            let layer: Config = toml::from_str(&text).map_err(|e| DesiredError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?;
            merged = merged.layer(layer);
        }
        Ok(merged)
    }
}

/// How one platform was installed over D-Bus or the CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSpec {
    #[serde(default)]
    pub flags: Option<String>,
    #[serde(default)]
    pub persist: bool,
    #[serde(default)]
    pub allow_dynamic: bool,
}

/// Requests recorded by the daemon (and the CLI) in the state directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    #[serde(default)]
    pub installed: BTreeMap<String, InstallSpec>,
    #[serde(default)]
    pub uninstalled: BTreeSet<String>,
    #[serde(default)]
    pub disabled: BTreeSet<String>,
}

impl Recorded {
    /// Records an install: wanted from now on, enabled, with these options.
    pub fn install(&mut self, platform: &str, spec: &InstallSpec) {
        self.uninstalled.remove(platform);
        self.disabled.remove(platform);
        self.installed.insert(platform.to_string(), spec.clone());
    }

    /// Undoes [`Recorded::install`] of `platform`, back to how `previous` had it.
    pub fn forget_install(&mut self, platform: &str, previous: &Recorded) {
        match previous.installed.get(platform) {
            Some(spec) => {
                self.installed.insert(platform.to_string(), spec.clone());
            }
            None => {
                self.installed.remove(platform);
            }
        }
        if previous.uninstalled.contains(platform) {
            self.uninstalled.insert(platform.to_string());
        }
        if previous.disabled.contains(platform) {
            self.disabled.insert(platform.to_string());
        }
    }

    pub fn uninstall(&mut self, platform: &str) {
        self.installed.remove(platform);
        self.disabled.remove(platform);
        self.uninstalled.insert(platform.to_string());
    }

    pub fn set_enabled(&mut self, platform: &str, enabled: bool) {
        if enabled {
            self.disabled.remove(platform);
        } else {
            self.disabled.insert(platform.to_string());
        }
    }

    /// Reads `<state dir>/desired.toml`; a missing file is an empty record.
    pub fn load(state_dir: &Path) -> Result<Recorded, DesiredError> {
        let path = state_dir.join(RECORD_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| DesiredError::Parse {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Recorded::default()),
            Err(source) => Err(DesiredError::Read { path, source }),
        }
    }

    /// Starts writing the record (see [`crate::persist::atomic::stage`]): the path and the
    /// staged replacement.
    pub fn stage(
        &self,
        state_dir: &Path,
    ) -> Result<(PathBuf, crate::persist::atomic::Staged), DesiredError> {
        let path = state_dir.join(RECORD_FILE);
        let text = toml::to_string(self).map_err(|e| DesiredError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        match crate::persist::atomic::stage(&path, text.as_bytes(), 0o600) {
            Ok(staged) => Ok((path, staged)),
            Err(source) => Err(DesiredError::Write { path, source }),
        }
    }

    /// Writes the record atomically (unique temp file, fsync, rename, directory fsync), 0600.
    pub fn save(&self, state_dir: &Path) -> Result<(), DesiredError> {
        let path = state_dir.join(RECORD_FILE);
        let text = toml::to_string(self).map_err(|e| DesiredError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        crate::persist::atomic::write(&path, text.as_bytes(), 0o600)
            .map_err(|source| DesiredError::Write { path, source })
    }
}

/// One platform the daemon keeps installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The platform as configured or requested (the desired-state key).
    pub platform: String,
    /// What to pass to install: the preferred handler if the config names one.
    pub target: String,
    pub spec: InstallSpec,
    pub enabled: bool,
}

/// The desired-state keys for the words of a request (pure): each word becomes its canonical
/// handler name (so `linux/arm64`, `arm64` and `qemu-aarch64` are one key), and `all`
/// becomes every platform wanted now (`current`) plus `all` itself.
pub fn canonical_keys(
    words: &[String],
    canon: &dyn Fn(&str) -> String,
    current: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words {
        let keys = if w.eq_ignore_ascii_case(ALL) {
            current.iter().cloned().chain([ALL.to_string()]).collect()
        } else {
            vec![canon(w)]
        };
        for k in keys {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out
}

/// The effective desired state (pure): config platforms in order, then recorded ones, each
/// under its canonical key (`canon`), so a platform configured as `linux/arm64` and
/// uninstalled as `arm64` is one platform.
pub fn effective(
    config: &Config,
    recorded: &Recorded,
    canon: &dyn Fn(&str) -> String,
) -> Vec<Wanted> {
    let config_keys: Vec<String> = config.platforms.iter().map(|p| canon(p)).collect();
    let mut order: Vec<&String> = config_keys.iter().collect();
    for p in recorded.installed.keys() {
        if !order.contains(&p) {
            order.push(p);
        }
    }
    order
        .into_iter()
        .filter(|p| !recorded.uninstalled.contains(*p))
        .map(|p| {
            let spec = match recorded.installed.get(p) {
                Some(spec) => InstallSpec {
                    flags: spec.flags.clone().or_else(|| config.flags.clone()),
                    ..spec.clone()
                },
                None => InstallSpec {
                    flags: config.flags.clone(),
                    persist: config.persist.unwrap_or(false),
                    allow_dynamic: false,
                },
            };
            Wanted {
                platform: p.clone(),
                target: config
                    .prefer
                    .iter()
                    .find(|(k, _)| canon(k) == *p)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| p.clone()),
                spec,
                enabled: !recorded.disabled.contains(p),
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
