//! Atomic file replacement: write a temporary file in the same directory, rename it over
//! the old one; with [`Durability::Synced`] also fsync the file and the directory.

use std::io::Write;
use std::path::Path;

/// How far a replacement must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Readers and a killed process see the old or the new content (rename is atomic); a
    /// power loss may bring back the old one. For records of volatile things (binfmt_misc
    /// entries vanish at power loss too).
    Atomic,
    /// Also on disk when this returns (fsync of the file and of its directory).
    Synced,
}

/// Replaces `path` with `data` so that readers see either the old or the new content,
/// and syncs it to disk.
pub fn write(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    write_with(path, data, mode, Durability::Synced)
}

/// Replaces `path` with `data` atomically, synced to disk only when asked.
pub fn write_with(
    path: &Path,
    data: &[u8],
    mode: u32,
    durability: Durability,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".binfmtd-")
        .tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    let synced = durability == Durability::Synced;
    if synced {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    if synced {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
