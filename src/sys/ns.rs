//! User + mount namespaces and private binfmt_misc instances (one per user namespace, Linux 6.7+).

use super::idmap;
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

/// The facts the id mapping is chosen on: the caller's ids and name, /etc/subuid and
/// /etc/subgid, and whether newuidmap/newgidmap exist.
pub fn idmap_facts() -> idmap::Facts {
    let uid = nix::unistd::getuid();
    let helpers = ["newuidmap", "newgidmap"].iter().all(|h| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(h).is_file()))
    });
    idmap::Facts {
        uid: uid.as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        user_name: nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name),
        subuid: std::fs::read_to_string("/etc/subuid").ok(),
        subgid: std::fs::read_to_string("/etc/subgid").ok(),
        helpers,
    }
}

/// Writes one map of `pid` from the parent namespace: directly (Identity) or with
/// newuidmap/newgidmap (Subordinate). Runs in the helper process.
fn write_map_from_outside(pid: i32, mapping: &idmap::Mapping, gid: bool) -> bool {
    let file = if gid { "gid_map" } else { "uid_map" };
    match mapping.direct_text(gid) {
        Some(text) => std::fs::write(format!("/proc/{pid}/{file}"), text).is_ok(),
        None => std::process::Command::new(if gid { "newgidmap" } else { "newuidmap" })
            .arg(pid.to_string())
            .args(mapping.helper_args(gid))
            .stdin(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

/// Unshares user + mount namespaces and has a helper process, left in the parent namespace,
/// write the maps (only a process outside may map more than its own id). Returns which maps
/// the helper wrote (uid, gid). The calling process must be single-threaded.
fn unshare_mapped_from_outside(mapping: &idmap::Mapping) -> Result<(bool, bool), NsError> {
    use nix::unistd::{fork, pipe, read, write, ForkResult};
    let me = nix::unistd::getpid().as_raw();
    let (go_r, go_w) = pipe().map_err(NsError::Unshare)?;
    // SAFETY: the caller is single-threaded (documented), so the child may allocate; it ends
    // with _exit and never returns into the caller's code.
    match unsafe { fork() }.map_err(NsError::Unshare)? {
        ForkResult::Child => {
            drop(go_w);
            let mut b = [0u8; 1];
            let code = match read(&go_r, &mut b) {
                Ok(1) => {
                    let u = write_map_from_outside(me, mapping, false);
                    let g = u && write_map_from_outside(me, mapping, true);
                    u as i32 | ((g as i32) << 1)
                }
                _ => 0,
            };
            // SAFETY: ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(go_r);
            let unshared = unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS);
            let _ = write(&go_w, if unshared.is_ok() { b"1" } else { b"" });
            drop(go_w);
            let status = nix::sys::wait::waitpid(child, None);
            unshared.map_err(NsError::Unshare)?;
            let code = match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c,
                _ => 0,
            };
            Ok((code & 1 != 0, code & 2 != 0))
        }
    }
}

/// Enters a new user + mount namespace with root inside: the full id range as root, the
/// caller's subordinate ids as a user, else only the caller's own id (the returned mapping
/// says which, with a note in the last case). The calling process must be single-threaded.
pub fn enter_user_and_mount_ns() -> Result<idmap::Mapping, NsError> {
    let facts = idmap_facts();
    let mut mapping = idmap::choose(&facts);
    let (mut uid_done, mut gid_done) = (false, false);
    if matches!(mapping, idmap::Mapping::Single { .. }) {
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(NsError::Unshare)?;
    } else {
        (uid_done, gid_done) = unshare_mapped_from_outside(&mapping)?;
        if !(uid_done && gid_done) {
            let who = if uid_done { "newgidmap" } else { "newuidmap" };
            mapping = idmap::Mapping::Single {
                uid: facts.uid,
                gid: facts.gid,
                why: format!("mapping the id range failed ({who} or the kernel refused it)"),
            };
        }
    }
    let write = |file: &'static str, text: String| {
        std::fs::write(file, text).map_err(|source| NsError::Map { file, source })
    };
    if !gid_done {
        write("/proc/self/setgroups", "deny".into())?;
        write("/proc/self/gid_map", format!("0 {} 1", facts.gid))?;
    }
    if !uid_done {
        write("/proc/self/uid_map", format!("0 {} 1", facts.uid))?;
    }
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(NsError::Propagation)?;
    Ok(mapping)
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

/// For use between fork and exec: unshares `flags` (which include `CLONE_NEWNS`) and makes
/// every mount private, so that nothing mounted afterwards propagates back. Only raw system
/// calls; no allocation.
pub fn unshare_private_mounts_raw(flags: libc::c_int) -> std::io::Result<()> {
    // SAFETY: plain system calls with NUL-terminated arguments that outlive them.
    unsafe {
        if libc::unshare(flags) != 0
            || libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// For use between fork and exec: new user + mount namespace with an empty binfmt_misc
/// instance mounted at `binfmt_misc`. Only raw system calls; no allocation.
pub fn enter_empty_instance_raw(binfmt_misc: &CStr) -> std::io::Result<()> {
    unshare_private_mounts_raw(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)?;
    // SAFETY: plain system calls with NUL-terminated arguments that outlive them.
    unsafe {
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
