//! systemd binfmt.d files: ours (`binfmtd-NAME.conf`) and everyone's, for owner attribution.

use crate::kernel::codec;
use crate::model::{Entry, Rule};
use std::path::{Path, PathBuf};

/// Directories systemd-binfmt reads, in priority order.
pub const SYSTEM_DIRS: &[&str] = &[
    "/etc/binfmt.d",
    "/run/binfmt.d",
    "/usr/local/lib/binfmt.d",
    "/usr/lib/binfmt.d",
];

/// The file `--persist` writes for an entry.
pub fn file_for(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("binfmtd-{name}.conf"))
}

/// Writes a binfmt.d file holding exactly one register line.
pub fn write(dir: &Path, rule: &Rule) -> Result<PathBuf, std::io::Error> {
    let line = codec::encode(rule)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let path = file_for(dir, &rule.name);
    let text = format!(
        "# Written by binfmtd for handler {}. `binfmtd uninstall` removes it; edits are overwritten.\n{line}\n",
        rule.name
    );
    super::atomic::write(&path, text.as_bytes(), 0o644)?;
    Ok(path)
}

/// Removes our binfmt.d file for an entry; a missing file is fine.
pub fn remove(dir: &Path, name: &str) -> std::io::Result<bool> {
    match std::fs::remove_file(file_for(dir, name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every register line in binfmt.d files: (file, rule). Unparseable lines are skipped.
pub fn scan(dirs: &[PathBuf]) -> Vec<(PathBuf, Rule)> {
    let mut seen = std::collections::BTreeMap::new();
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if !name.to_string_lossy().ends_with(".conf") {
                continue;
            }
            // The first directory wins for a given file name.
            seen.entry(name).or_insert_with(|| e.path());
        }
    }
    let mut out = Vec::new();
    for path in seen.into_values() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        out.extend(parse(&text).into_iter().map(|rule| (path.clone(), rule)));
    }
    out
}

/// The register lines of one binfmt.d file (pure): comments (`#`, `;`), blank and
/// unparseable lines are skipped, as systemd-binfmt does.
pub fn parse(text: &str) -> Vec<Rule> {
    text.lines()
        .map(str::trim)
        .filter(|l| !(l.is_empty() || l.starts_with('#') || l.starts_with(';')))
        .filter_map(|l| codec::decode(l).ok())
        .collect()
}

/// Names the package or tool that registered a foreign entry, when a file says so: a binfmt.d
/// line or a binfmt-support record that registers exactly this entry.
pub fn attribute(
    entry: &Entry,
    binfmt_d: &[(PathBuf, Rule)],
    binfmt_support: &[(PathBuf, super::binfmt_support::AdminRecord)],
) -> Option<String> {
    if let Some((path, _)) = binfmt_d.iter().find(|(_, r)| r.same_as(entry)) {
        return Some(format!("binfmt.d file {}", path.display()));
    }
    if let Some(who) = super::binfmt_support::attribute(entry, binfmt_support) {
        return Some(who);
    }
    match entry.name.as_str() {
        "WSLInterop" | "WSLInterop-late" => Some("Windows Subsystem for Linux".into()),
        n if n.starts_with("rosetta") => Some("Rosetta (set up by the VM manager)".into()),
        n if n.starts_with("FEX") => Some("FEX-Emu".into()),
        _ => None,
    }
}

/// A binfmt.d(5) file with one register line per rule, in order (pure). systemd-binfmt writes
/// each line to `register` as it is, so what it replays is exactly what was encoded here.
pub fn render(rules: &[Rule], header: &str) -> Result<String, codec::EncodeError> {
    let mut out = String::new();
    for l in header.lines() {
        out.push_str(&format!("# {l}\n"));
    }
    for r in rules {
        out.push_str(&codec::encode(r)?);
        out.push('\n');
    }
    Ok(out)
}
