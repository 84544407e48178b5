//! The real binfmt_misc implementation: reads and writes files under the mount point.

use super::{codec, Binfmt, EntryAction, KernelError, Snapshot};
use crate::model::Rule;
use nix::errno::Errno;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// binfmt_misc at a (configurable) mount point.
#[derive(Debug, Clone)]
pub struct ProcBinfmt {
    root: PathBuf,
}

/// A short explanation of why the kernel returns each errno from `register`.
pub fn errno_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EEXIST => "an entry with this name already exists; remove it first or pick another name",
        Errno::EINVAL => "the kernel rejected the line's syntax or flags",
        Errno::ENOENT => "with the F flag the interpreter is opened now, and it does not exist",
        Errno::EPERM => "registering needs CAP_SYS_ADMIN in the user namespace that owns this binfmt_misc instance",
        Errno::EACCES => "with the F flag the interpreter is opened for execution now, and that was denied: it is not executable, or it sits on a noexec mount; use an interpreter on an exec mount",
        Errno::ENOEXEC => "the interpreter cannot be executed",
        Errno::ENOMEM => "the kernel is out of memory",
        _ => "see fs/binfmt_misc.c for this errno",
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

/// Reads an entry file with one read: entries are far smaller than the buffer.
fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        let n = f.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

impl ProcBinfmt {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcBinfmt { root: root.into() }
    }

    fn write_file(&self, path: &Path, data: &str, action: &'static str) -> Result<(), KernelError> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| self.classify(path, action, source))?;
        // One write() call: the kernel parses exactly what a single write delivers.
        f.write(data.as_bytes()).map(|_| ()).map_err(|source| {
            // Opening proved the permission; a failed write to `register` is the kernel
            // refusing the line (e.g. EACCES for an interpreter on a noexec mount).
            if path.ends_with("register") && io_errno(&source) != Errno::EPERM {
                KernelError::Io {
                    action,
                    path: path.to_path_buf(),
                    source,
                }
            } else {
                self.classify(path, action, source)
            }
        })
    }

    fn classify(&self, path: &Path, action: &'static str, source: std::io::Error) -> KernelError {
        match io_errno(&source) {
            Errno::EACCES | Errno::EPERM => KernelError::Permission {
                path: path.to_path_buf(),
                hint: crate::privilege::missing_hint(),
            },
            Errno::ENOENT if !self.root.join("register").exists() => {
                KernelError::NotMounted(self.root.clone())
            }
            _ => KernelError::Io {
                action,
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

impl Binfmt for ProcBinfmt {
    fn path(&self) -> PathBuf {
        self.root.clone()
    }
    fn ensure_mounted(&self) -> Result<bool, KernelError> {
        Ok(super::mount::ensure_mounted(&self.root)? == super::mount::MountOutcome::MountedNow)
    }

    fn snapshot(&self) -> Result<Snapshot, KernelError> {
        if !super::mount::is_binfmt_mount(&self.root) {
            return Ok(Snapshot {
                path: self.root.clone(),
                mounted: false,
                enabled: false,
                entries: vec![],
                unreadable: vec![],
            });
        }
        let status_path = self.root.join("status");
        let status = fs::read_to_string(&status_path).map_err(|source| KernelError::Io {
            action: "read",
            path: status_path,
            source,
        })?;
        // readdir order of binfmt_misc is the kernel's list order: newest entry first.
        let dir = fs::read_dir(&self.root).map_err(|source| KernelError::Io {
            action: "list",
            path: self.root.clone(),
            source,
        })?;
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for item in dir {
            let item = item.map_err(|source| KernelError::Io {
                action: "list",
                path: self.root.clone(),
                source,
            })?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name == "register" || name == "status" {
                continue;
            }
            match read_small(&item.path()) {
                Ok(text) => match codec::parse_entry(&name, &text) {
                    Ok(e) => entries.push(e),
                    Err(e) => unreadable.push((name, e.reason)),
                },
                // Removed between readdir and read: not an error.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => unreadable.push((name, e.to_string())),
            }
        }
        Ok(Snapshot {
            path: self.root.clone(),
            mounted: true,
            enabled: status.trim() == "enabled",
            entries,
            unreadable,
        })
    }

    fn register(&self, rule: &Rule) -> Result<(), KernelError> {
        let line = codec::encode(rule)?;
        let path = self.root.join("register");
        match self.write_file(&path, &line, "write") {
            Err(KernelError::Io { source, .. }) => {
                let errno = io_errno(&source);
                Err(KernelError::Refused {
                    path,
                    line,
                    errno,
                    hint: errno_hint(errno),
                })
            }
            other => other,
        }
    }

    fn act(&self, name: &str, action: EntryAction) -> Result<(), KernelError> {
        codec::validate_name(name)?;
        let path = self.root.join(name);
        if !path.exists() {
            return Err(KernelError::NoSuchEntry {
                dir: self.root.clone(),
                name: name.to_string(),
            });
        }
        self.write_file(&path, action.as_kernel_str(), "write")
    }

    fn set_enabled(&self, enabled: bool) -> Result<(), KernelError> {
        let path = self.root.join("status");
        self.write_file(&path, if enabled { "1" } else { "0" }, "write")
    }
}
