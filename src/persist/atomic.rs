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
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_beside(path, data, mode)?;
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

/// A temporary file with `data` and `mode` in `path`'s directory (created if missing).
fn temp_beside(path: &Path, data: &[u8], mode: u32) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".binfmtd-")
        .tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(tmp)
}

/// A synced replacement in two halves, so that its waits overlap other work: [`stage`]
/// writes the temporary file and syncs it on a thread of its own; [`Staged::commit`] waits
/// for that, renames it into place and syncs the directory on another thread, which
/// [`DirSync::wait`] waits for. Every write, open and rename is made by the calling thread.
/// Dropping a `Staged` removes its temporary file: nothing replaced.
#[derive(Debug)]
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    path: std::path::PathBuf,
    syncing: std::thread::JoinHandle<std::io::Result<()>>,
}

/// The directory sync of a committed [`Staged`] replacement.
#[derive(Debug)]
pub struct DirSync(std::thread::JoinHandle<std::io::Result<()>>);

/// Writes `data` for `path` into a temporary file beside it and starts syncing it.
pub fn stage(path: &Path, data: &[u8], mode: u32) -> std::io::Result<Staged> {
    let tmp = temp_beside(path, data, mode)?;
    let file = tmp.as_file().try_clone()?;
    let syncing = std::thread::spawn(move || file.sync_all());
    Ok(Staged {
        tmp,
        path: path.to_path_buf(),
        syncing,
    })
}

impl Staged {
    /// Waits until the data is on disk, then renames it over the target and starts syncing
    /// the directory.
    pub fn commit(self) -> std::io::Result<DirSync> {
        let synced = self
            .syncing
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked")));
        synced?;
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        let dir = std::fs::File::open(dir)?;
        Ok(DirSync(std::thread::spawn(move || dir.sync_all())))
    }
}

impl DirSync {
    /// Waits until the rename is on disk.
    pub fn wait(self) -> std::io::Result<()> {
        self.0
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod staged_tests {
    use super::*;

    #[test]
    fn staged_replacement_lands_only_on_commit_and_vanishes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record");
        std::fs::write(&path, b"old").unwrap();
        let dropped = stage(&path, b"never", 0o600).unwrap();
        drop(dropped);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let staged = stage(&path, b"new", 0o600).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"old",
            "not in place before commit"
        );
        staged.commit().unwrap().wait().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }
}
