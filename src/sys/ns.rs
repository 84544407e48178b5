//! User + mount namespaces and private binfmt_misc instances (one per user namespace, Linux 6.7+).

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::ffi::CStr;
use std::path::Path;

/// Why a private binfmt_misc instance cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("Linux {release} has no per-user-namespace binfmt_misc; private instances need Linux 6.7 or newer")]
    KernelTooOld { release: String },
    #[error("cannot create a user namespace: {0}; unprivileged user namespaces may be disabled (check sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, or an AppArmor userns restriction)")]
    Unshare(nix::errno::Errno),
    #[error("cannot write {file}: {source}")]
    Map {
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot mount a private binfmt_misc instance at {path}: {errno}; the kernel may lack binfmt_misc or user-namespace mounts of it")]
    Mount {
        path: String,
        errno: nix::errno::Errno,
    },
    #[error("cannot make mounts private: {0}")]
    Propagation(nix::errno::Errno),
}

/// True when a kernel of this release gives each user namespace its own binfmt_misc.
pub fn has_private_instances(release: &str) -> bool {
    super::release::major_minor(release).is_some_and(|v| v >= (6, 7))
}

/// Checks that the running kernel gives private instances.
pub fn check_private_instance() -> Result<(), NsError> {
    let release = super::release::kernel_release();
    if has_private_instances(&release) {
        Ok(())
    } else {
        Err(NsError::KernelTooOld { release })
    }
}

/// Enters a new user + mount namespace, mapping the current user to root inside it.
/// The calling process must be single-threaded.
pub fn enter_user_and_mount_ns() -> Result<(), NsError> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(NsError::Unshare)?;
    let write = |file: &'static str, text: String| {
        std::fs::write(file, text).map_err(|source| NsError::Map { file, source })
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(NsError::Propagation)?;
    Ok(())
}

/// Mounts a fresh binfmt_misc instance at `path` (the namespace's own instance).
pub fn mount_private_instance(path: &Path) -> Result<(), NsError> {
    mount(
        Some("binfmt_misc"),
        path,
        Some("binfmt_misc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|errno| NsError::Mount {
        path: path.display().to_string(),
        errno,
    })
}

/// For use between fork and exec: new user + mount namespace with an empty binfmt_misc
/// instance mounted at `binfmt_misc`. Only raw system calls; no allocation.
pub fn enter_empty_instance_raw(binfmt_misc: &CStr) -> std::io::Result<()> {
    // SAFETY: plain system calls with NUL-terminated arguments that outlive them.
    unsafe {
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            c"binfmt_misc".as_ptr(),
            binfmt_misc.as_ptr(),
            c"binfmt_misc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_instances_start_with_linux_6_7() {
        for (release, want) in [
            ("6.7.0-rc1", true),
            ("6.18.44-fc-v595", true),
            ("7.0", true),
            ("6.6.30", false),
            ("5.15.0-generic", false),
            ("garbage", false),
        ] {
            assert_eq!(has_private_instances(release), want, "{release}");
        }
    }
}
