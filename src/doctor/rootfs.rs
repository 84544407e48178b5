//! Confined lookups inside `--root`: every path resolves as if chrooted (openat2 RESOLVE_IN_ROOT,
//! or a component-by-component walk where openat2 is unavailable). Nothing outside is read.

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Symlinks followed in one lookup before giving up, like the kernel's MAXSYMLINKS.
const MAX_LINKS: u32 = 40;

/// Why a path inside the root could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("does not exist")]
    NotFound,
    #[error("too many levels of symbolic links (a loop)")]
    Loop,
    #[error("a path component is not a directory")]
    NotDir,
    #[error("permission denied")]
    Denied,
    #[error("{0}")]
    Other(Errno),
}

impl From<Errno> for LookupError {
    fn from(e: Errno) -> Self {
        match e {
            Errno::ENOENT => LookupError::NotFound,
            Errno::ELOOP => LookupError::Loop,
            Errno::ENOTDIR => LookupError::NotDir,
            Errno::EACCES | Errno::EPERM => LookupError::Denied,
            e => LookupError::Other(e),
        }
    }
}

/// The root directory could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open root directory {path}: {errno}; pass an existing directory to --root")]
pub struct RootError {
    pub path: PathBuf,
    pub errno: Errno,
}

/// Type of a file as `fstat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

impl FileType {
    pub fn of(st: &FileStat) -> FileType {
        match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFDIR => FileType::Directory,
            SFlag::S_IFLNK => FileType::Symlink,
            SFlag::S_IFIFO => FileType::Fifo,
            SFlag::S_IFCHR => FileType::CharDevice,
            SFlag::S_IFBLK => FileType::BlockDevice,
            SFlag::S_IFSOCK => FileType::Socket,
            _ => FileType::Regular,
        }
    }
    pub fn describe(self) -> &'static str {
        match self {
            FileType::Regular => "regular file",
            FileType::Directory => "directory",
            FileType::Symlink => "symbolic link",
            FileType::Fifo => "FIFO (named pipe)",
            FileType::CharDevice => "character device",
            FileType::BlockDevice => "block device",
            FileType::Socket => "socket",
        }
    }
}

/// The metadata doctor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: FileType,
    pub mode: u32,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

impl Meta {
    pub fn of(st: &FileStat) -> Meta {
        Meta {
            kind: FileType::of(st),
            mode: st.st_mode & 0o7777,
            size: st.st_size.max(0) as u64,
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
        }
    }
    pub fn executable(&self) -> bool {
        self.mode & 0o111 != 0
    }
    pub fn setuid(&self) -> bool {
        self.mode & 0o4000 != 0
    }
    pub fn setgid(&self) -> bool {
        self.mode & 0o2010 == 0o2010
    }
}

/// How lookups are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    Openat2,
    Manual,
}

/// An opened root directory; all lookups stay inside it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    canonical: PathBuf,
    mode: Confinement,
    /// Only what any user may reach: every directory on the way world-searchable and the
    /// file world-readable (the D-Bus Doctor, where a privileged daemon looks up paths named
    /// inside a caller's file).
    public_only: bool,
}

/// Turns "/a/b" or "a/b" into a relative path for openat2 ("" means the root itself).
fn rel(path: &str) -> &str {
    let p = path.trim_start_matches('/');
    if p.is_empty() {
        "."
    } else {
        p
    }
}

impl Root {
    /// Opens `path` as the root, using openat2 where the kernel offers it.
    pub fn open(path: &Path) -> Result<Root, RootError> {
        let mut r = Self::open_with(path, Confinement::Openat2)?;
        let probe = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT);
        if nix::fcntl::openat2(r.fd.as_fd(), ".", probe).is_err() {
            r.mode = Confinement::Manual;
        }
        Ok(r)
    }

    /// Opens `path` with an explicit confinement method (tests exercise both).
    pub fn open_with(path: &Path, mode: Confinement) -> Result<Root, RootError> {
        let err = |errno| RootError {
            path: path.to_path_buf(),
            errno,
        };
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(err)?;
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            canonical,
            mode,
            public_only: false,
        })
    }

    /// Restricts lookups to what any unprivileged user could reach (see `public_only`).
    pub fn restrict_to_public(&mut self) {
        self.public_only = true;
        self.mode = Confinement::Manual;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn confinement(&self) -> Confinement {
        self.mode
    }
    /// True when the root is the host's `/`.
    pub fn is_host_root(&self) -> bool {
        self.canonical == Path::new("/")
    }
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Resolves `path` inside the root to an `O_PATH` descriptor, following symlinks inside.
    pub fn resolve(&self, path: &str) -> Result<OwnedFd, LookupError> {
        match self.mode {
            Confinement::Openat2 => {
                let how = OpenHow::new()
                    .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
                    .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
                Ok(nix::fcntl::openat2(self.fd.as_fd(), rel(path), how)?)
            }
            Confinement::Manual => self.walk(path),
        }
    }

    /// The chroot-like walk used without openat2: `..` stops at the root, absolute symlink
    /// targets restart at the root, and every component is opened with O_NOFOLLOW.
    fn walk(&self, path: &str) -> Result<OwnedFd, LookupError> {
        let dup = |fd: BorrowedFd<'_>| {
            fd.try_clone_to_owned()
                .map_err(|_| LookupError::Other(Errno::EMFILE))
        };
        let mut stack: Vec<OwnedFd> = vec![dup(self.fd.as_fd())?];
        let mut queue: std::collections::VecDeque<String> =
            path.split('/').map(str::to_string).collect();
        let mut links = 0;
        while let Some(comp) = queue.pop_front() {
            if comp.is_empty() || comp == "." {
                continue;
            }
            if comp == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let cur = stack.last().ok_or(LookupError::NotFound)?;
            let fd = nix::fcntl::openat(
                cur.as_fd(),
                comp.as_str(),
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let st = nix::sys::stat::fstat(fd.as_fd())?;
            match FileType::of(&st) {
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(LookupError::Loop);
                    }
                    let target = nix::fcntl::readlinkat(cur.as_fd(), comp.as_str())?;
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with('/') {
                        stack.truncate(1);
                    }
                    for c in target.split('/').rev() {
                        queue.push_front(c.to_string());
                    }
                }
                FileType::Directory if self.public_only && st.st_mode & 0o001 == 0 => {
                    return Err(LookupError::Other(Errno::EACCES))
                }
                FileType::Directory => stack.push(fd),
                _ if queue.iter().any(|c| !c.is_empty() && c != ".") => {
                    return Err(LookupError::NotDir)
                }
                _ if self.public_only && st.st_mode & 0o004 == 0 => {
                    return Err(LookupError::Other(Errno::EACCES))
                }
                _ => return Ok(fd),
            }
        }
        stack.pop().ok_or(LookupError::NotFound)
    }

    /// Metadata of `path` (symlinks followed inside the root).
    pub fn stat(&self, path: &str) -> Result<Meta, LookupError> {
        let fd = self.resolve(path)?;
        Ok(Meta::of(&nix::sys::stat::fstat(fd.as_fd())?))
    }

    pub fn exists(&self, path: &str) -> bool {
        self.resolve(path).is_ok()
    }

    /// Opens a regular file for reading without ever opening anything else: the type is
    /// checked on an `O_PATH` descriptor first, so FIFOs and devices are never opened.
    pub fn open_regular(&self, path: &str) -> Result<(File, Meta), OpenError> {
        let fd = self.resolve(path).map_err(OpenError::Lookup)?;
        open_path_fd(fd)
    }

    /// Reads a small regular file (configuration), at most `max` bytes.
    pub fn read_small(&self, path: &str, max: u64) -> Result<Vec<u8>, OpenError> {
        use std::io::Read;
        let (f, _) = self.open_regular(path)?;
        let mut out = Vec::new();
        f.take(max)
            .read_to_end(&mut out)
            .map_err(|e| OpenError::Lookup(LookupError::Other(io_errno(&e))))?;
        Ok(out)
    }

    /// Names in a directory inside the root.
    pub fn list_dir(&self, path: &str) -> Result<Vec<String>, LookupError> {
        let fd = self.resolve(path)?;
        let dfd = nix::fcntl::openat(
            fd.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let dir = nix::dir::Dir::from_fd(dfd)?;
        let mut names: Vec<String> = dir
            .into_iter()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        Ok(names)
    }

    /// The root-relative path a descriptor ended up at, from /proc/self/fd.
    pub fn real_path(&self, fd: BorrowedFd<'_>) -> Option<String> {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        let inside = link.strip_prefix(&self.canonical).ok()?;
        Some(format!("/{}", inside.display()))
    }
}

/// Why a file could not be opened for reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Lookup(LookupError),
    #[error("is a {}, not a regular file", .0.kind.describe())]
    NotRegular(Meta),
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

/// Turns an `O_PATH` descriptor of a regular file into a readable one (same inode).
pub fn open_path_fd(fd: OwnedFd) -> Result<(File, Meta), OpenError> {
    let lookup = |e: Errno| OpenError::Lookup(LookupError::from(e));
    let meta = Meta::of(&nix::sys::stat::fstat(fd.as_fd()).map_err(lookup)?);
    if meta.kind != FileType::Regular {
        return Err(OpenError::NotRegular(meta));
    }
    // Reopening through /proc/self/fd refers to exactly this inode: no second lookup.
    let file = nix::fcntl::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(lookup)?;
    let again = Meta::of(&nix::sys::stat::fstat(file.as_fd()).map_err(lookup)?);
    if again.ino != meta.ino || again.dev != meta.dev || again.kind != FileType::Regular {
        return Err(OpenError::NotRegular(again));
    }
    Ok((File::from(file), meta))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "rootfs_tests.rs"]
mod tests;
