//! `--all`: walk the root without following symlinks or leaving its filesystem, diagnose every
//! ELF on all cores (std::thread::scope), and keep only counts plus files that have problems.

use super::findings::Severity;
use super::inspect::{self, Subject};
use super::libs::Resolver;
use super::report::{SubjectReport, Summary, Tally};
use super::rootfs::Meta;
use super::Session;
use nix::dir::{Dir, Type};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

/// Files queued between the walker and the workers; bounds memory whatever the tree size.
const QUEUE: usize = 512;
/// Problem files kept in the report; the summary still counts all of them.
const MAX_SUBJECTS: usize = 5000;

/// A regular file found by the walker: its directory and name.
struct Item {
    dir: Arc<OwnedFd>,
    name: String,
    path: String,
}

/// Scans the whole root. Returns problem subjects and the summary.
pub(crate) fn scan(session: &Session<'_>) -> (Vec<SubjectReport>, Summary) {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    let (tx, rx) = sync_channel::<Item>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    let root_dev = nix::sys::stat::fstat(session.root.fd())
        .map(|s| s.st_dev)
        .ok();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let rx = rx.clone();
                scope.spawn(move || work(session, &rx))
            })
            .collect();
        if let Ok(top) = session.root.fd().try_clone_to_owned() {
            walk(Arc::new(top), String::new(), root_dev, &tx, 0);
        }
        drop(tx);
        let mut tally = Tally::default();
        let mut subjects = Vec::new();
        for h in handles {
            if let Ok((t, mut s)) = h.join() {
                tally.merge(t);
                subjects.append(&mut s);
            }
        }
        subjects.sort_by(|a, b| a.path.cmp(&b.path));
        subjects.truncate(MAX_SUBJECTS);
        (subjects, tally.finish())
    })
}

/// Depth-first walk with directory descriptors; symlinks are never followed.
fn walk(
    dir: Arc<OwnedFd>,
    prefix: String,
    root_dev: Option<u64>,
    tx: &std::sync::mpsc::SyncSender<Item>,
    depth: u32,
) {
    if depth > 64 {
        return;
    }
    let Ok(dfd) = nix::fcntl::openat(
        dir.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let Ok(d) = Dir::from_fd(dfd) else { return };
    let mut subdirs = Vec::new();
    for entry in d.into_iter().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        let kind = match entry.file_type() {
            Some(t) => t,
            None => match nix::sys::stat::fstatat(
                dir.as_fd(),
                name.as_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => match super::rootfs::FileType::of(&st) {
                    super::rootfs::FileType::Regular => Type::File,
                    super::rootfs::FileType::Directory => Type::Directory,
                    _ => continue,
                },
                Err(_) => continue,
            },
        };
        let path = format!("{prefix}/{name}");
        match kind {
            Type::File => {
                let item = Item {
                    dir: dir.clone(),
                    name,
                    path,
                };
                let sent = tx.send(item);
                if sent.is_err() {
                    return;
                }
            }
            Type::Directory => subdirs.push((name, path)),
            _ => {}
        }
    }
    for (name, path) in subdirs {
        let Ok(fd) = nix::fcntl::openat(
            dir.as_fd(),
            name.as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        // Stay on the root's filesystem: never descend into /proc, /sys or other mounts.
        let dev = nix::sys::stat::fstat(fd.as_fd()).map(|s| s.st_dev).ok();
        if root_dev.is_some() && dev != root_dev {
            continue;
        }
        walk(Arc::new(fd), path, root_dev, tx, depth + 1);
    }
}

fn work(session: &Session<'_>, rx: &Mutex<Receiver<Item>>) -> (Tally, Vec<SubjectReport>) {
    let mut resolver = Resolver::new(&session.root);
    let mut tally = Tally::default();
    let mut keep = Vec::new();
    loop {
        let item = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => break,
        };
        let Ok(item) = item else { break };
        match diagnose(session, &item, &mut resolver) {
            Some(sr) => {
                tally.add(&sr, true);
                if sr.worst() >= Some(Severity::Warning) && keep.len() < MAX_SUBJECTS {
                    keep.push(sr);
                }
            }
            None => {
                // A regular file that is not ELF: counted, not judged.
                tally.summary.files += 1;
            }
        }
    }
    (tally, keep)
}

/// Opens a regular file without following a final symlink and without blocking; only ELF
/// files are judged.
fn diagnose(
    session: &Session<'_>,
    item: &Item,
    resolver: &mut Resolver<'_>,
) -> Option<SubjectReport> {
    let fd = nix::fcntl::openat(
        item.dir.as_fd(),
        item.name.as_str(),
        OFlag::O_RDONLY
            | OFlag::O_NONBLOCK
            | OFlag::O_NOFOLLOW
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let meta = Meta::of(&nix::sys::stat::fstat(fd.as_fd()).ok()?);
    if meta.kind != super::rootfs::FileType::Regular || meta.size < 52 {
        return None;
    }
    let file = std::fs::File::from(fd);
    if inspect::read_header(&file, 4) != b"\x7fELF" {
        return None;
    }
    let mut s: Subject =
        inspect::subject_from_file(file, meta, &item.path, Some(item.path.clone()), resolver);
    s.aliases = meta.nlink.saturating_sub(1) as usize;
    s.as_program = meta.executable();
    Some(session.judge(&s))
}
