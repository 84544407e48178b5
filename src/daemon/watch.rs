//! Drift triggers: inotify on the binfmt_misc directory (any write to `register`, `status`
//! or an entry, and entry removal, raise events, including systemd-binfmt's flush and
//! `echo -1 > status`), mount-table changes via POLLPRI on /proc/self/mountinfo (unmount and
//! remount), and an optional slow safety timer. Nothing here wakes the daemon periodically
//! unless the safety timer is set.

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Events on the binfmt_misc directory that can mean an entry changed.
pub fn watch_mask() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_UNMOUNT
}

/// Why a check was triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    BinfmtWrite,
    MountTable,
    Timer,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::BinfmtWrite => "binfmt_misc changed",
            Trigger::MountTable => "mount table changed",
            Trigger::Timer => "safety timer",
        }
    }
}

/// An inotify instance that tokio can poll (nix's type has `AsFd` only).
struct InotifyFd(Inotify);

impl std::os::fd::AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

/// Registers an owned descriptor with tokio.
fn poll<T: std::os::fd::AsRawFd>(inner: T, interest: Interest) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: `inner` owns its descriptor, which stays open until the AsyncFd (which owns
    // `inner`) is dropped, and nothing else closes or replaces it.
    unsafe { AsyncFd::register_with_interest(inner, interest) }.map_err(std::io::Error::from)
}

pub struct Watcher {
    dir: PathBuf,
    inotify: Option<AsyncFd<InotifyFd>>,
    mountinfo: Option<AsyncFd<std::fs::File>>,
    safety: Option<Duration>,
}

fn open_inotify(dir: &Path) -> Option<AsyncFd<InotifyFd>> {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|e| tracing::warn!("inotify unavailable ({e}); drift is only caught on mount changes and by the safety timer"))
        .ok()?;
    if let Err(e) = inotify.add_watch(dir, watch_mask()) {
        tracing::warn!(
            "cannot watch {} ({e}); will retry when the mount table changes",
            dir.display()
        );
        return None;
    }
    poll(InotifyFd(inotify), Interest::READABLE)
        .map_err(|e| tracing::warn!("cannot poll inotify: {e}"))
        .ok()
}

fn open_mountinfo() -> Option<AsyncFd<std::fs::File>> {
    let file = std::fs::File::open("/proc/self/mountinfo")
        .map_err(|e| tracing::warn!("cannot open /proc/self/mountinfo ({e}); unmount/remount is only caught by the safety timer"))
        .ok()?;
    poll(file, Interest::PRIORITY)
        .map_err(|e| tracing::warn!("cannot poll /proc/self/mountinfo: {e}"))
        .ok()
}

/// Waits for inotify events; `Some(true)` when the watch itself went away (unmount).
async fn inotify_ready(fd: &Option<AsyncFd<InotifyFd>>) -> Option<bool> {
    let Some(fd) = fd else {
        return std::future::pending().await;
    };
    let Ok(mut guard) = fd.readable().await else {
        return std::future::pending().await;
    };
    // Drain; which file changed does not matter, only that something was written or removed.
    match guard.get_inner().0.read_events() {
        Ok(events) => Some(events.iter().any(|e| {
            e.mask.intersects(
                AddWatchFlags::IN_IGNORED
                    | AddWatchFlags::IN_UNMOUNT
                    | AddWatchFlags::IN_DELETE_SELF,
            )
        })),
        Err(nix::errno::Errno::EAGAIN) => {
            guard.clear_ready();
            None
        }
        Err(_) => Some(true),
    }
}

impl Watcher {
    pub fn new(dir: &Path, safety: Option<Duration>) -> Self {
        Watcher {
            dir: dir.to_path_buf(),
            inotify: open_inotify(dir),
            mountinfo: open_mountinfo(),
            safety,
        }
    }

    /// Whether binfmt_misc writes are watched by inotify right now.
    pub fn watching(&self) -> bool {
        self.inotify.is_some()
    }

    /// Waits for the next trigger.
    pub async fn next(&mut self) -> Trigger {
        loop {
            let timer = async {
                match self.safety {
                    Some(period) => tokio::time::sleep(period).await,
                    None => std::future::pending().await,
                }
            };
            let mountinfo = async {
                match &self.mountinfo {
                    Some(fd) => match fd.ready(Interest::PRIORITY).await {
                        Ok(mut guard) => guard.clear_ready(),
                        Err(_) => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = inotify_ready(&self.inotify) => {
                    if let Some(gone) = event {
                        if gone {
                            self.inotify = open_inotify(&self.dir);
                        }
                        return Trigger::BinfmtWrite;
                    }
                }
                _ = mountinfo => {
                    // binfmt_misc may have been unmounted or mounted again: watch afresh.
                    self.inotify = open_inotify(&self.dir);
                    return Trigger::MountTable;
                }
                _ = timer => return Trigger::Timer,
            }
        }
    }

    /// Waits until no trigger came for `quiet` (at most `limit`), so a burst such as
    /// systemd-binfmt's flush-then-register is handled once, after it finished.
    pub async fn settle(&mut self, quiet: Duration, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let until = (tokio::time::Instant::now() + quiet).min(deadline);
            if tokio::time::timeout_at(until, self.next()).await.is_err()
                || tokio::time::Instant::now() >= deadline
            {
                return;
            }
        }
    }
}
