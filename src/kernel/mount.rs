//! Mounts binfmt_misc where it is absent; never unmounts (since Linux 6.7 that frees every entry).

use super::KernelError;
use nix::errno::Errno;
use std::path::Path;

/// `BINFMTFS_MAGIC` from linux/magic.h.
const BINFMTFS_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x4249_4e4d);

/// True when `path` is the root of a binfmt_misc mount.
pub fn is_binfmt_mount(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == BINFMTFS_MAGIC)
        .unwrap_or(false)
}

/// True when the running kernel has binfmt_misc (built in or loaded).
pub fn kernel_supports() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().last() == Some("binfmt_misc"))
        })
        .unwrap_or(false)
}

/// Outcome of [`ensure_mounted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MountOutcome {
    AlreadyMounted,
    MountedNow,
}

/// Mounts binfmt_misc at `path` unless it is already there.
pub fn ensure_mounted(path: &Path) -> Result<MountOutcome, KernelError> {
    if is_binfmt_mount(path) {
        return Ok(MountOutcome::AlreadyMounted);
    }
    if !kernel_supports() {
        return Err(KernelError::Unsupported);
    }
    nix::mount::mount(
        Some("binfmt_misc"),
        path,
        Some("binfmt_misc"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|errno| KernelError::Mount {
        path: path.to_path_buf(),
        errno,
        hint: match errno {
            Errno::EPERM => "mounting needs CAP_SYS_ADMIN; run as root, or use `binfmtd sandbox` for a private instance",
            Errno::ENOENT => "the mount point does not exist",
            Errno::ENODEV => "the kernel lacks binfmt_misc; try `modprobe binfmt_misc`",
            _ => "check `dmesg` for details",
        },
    })?;
    Ok(MountOutcome::MountedNow)
}
