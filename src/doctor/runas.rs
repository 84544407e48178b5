//! Which identity `doctor --run` gives the program: never the host's real root.

use serde::Serialize;

/// The unprivileged uid and gid a root caller's program runs as (`nobody`/`nogroup`).
pub const NOBODY: u32 = 65534;

/// How the identity was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityKind {
    /// An unprivileged caller: the program runs as the caller.
    Caller,
    /// A root caller: the program ran as nobody, without supplementary groups and with
    /// `no_new_privs` (setuid files cannot give root back).
    DroppedRoot,
    /// uid 0 of a user namespace whose uid 0 is an unprivileged uid outside: kept as is.
    NamespaceRoot,
    /// Root with no unprivileged uid to switch to: the program was not run.
    Refused,
}

/// The identity the program ran (or would have run) with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunIdentity {
    pub uid: u32,
    pub gid: u32,
    pub kind: IdentityKind,
    /// One line for people, e.g. "nobody (65534:65534): doctor drops root for --run".
    pub note: String,
}

impl RunIdentity {
    /// True when the child must switch to [`NOBODY`] before exec.
    pub fn drops_root(&self) -> bool {
        self.kind == IdentityKind::DroppedRoot
    }
}

/// The id outside the namespace that `id` inside maps to, from `/proc/self/{uid,gid}_map`
/// text (`inside outside count` per line). None when `id` is not mapped.
pub fn outside_id(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|line| {
        let mut f = line.split_whitespace().map(|w| w.parse::<u64>().ok());
        let (inside, outside, count) = (f.next()??, f.next()??, f.next()??);
        let id = u64::from(id);
        (id >= inside && id - inside < count)
            .then(|| u32::try_from(outside + (id - inside)).ok())
            .flatten()
    })
}

/// Chooses the identity for a caller with `euid`/`egid` and the namespace maps.
pub fn choose(euid: u32, egid: u32, uid_map: &str, gid_map: &str) -> RunIdentity {
    let id = |uid, gid, kind, note: String| RunIdentity {
        uid,
        gid,
        kind,
        note,
    };
    if euid != 0 {
        return id(
            euid,
            egid,
            IdentityKind::Caller,
            format!("the caller ({euid}:{egid})"),
        );
    }
    match outside_id(uid_map, 0) {
        Some(outside) if outside != 0 => {
            return id(
                0,
                egid,
                IdentityKind::NamespaceRoot,
                format!("uid 0 of a user namespace, uid {outside} outside: not the host's root"),
            )
        }
        _ => {}
    }
    if outside_id(uid_map, NOBODY).is_some() && outside_id(gid_map, NOBODY).is_some() {
        return id(
            NOBODY,
            NOBODY,
            IdentityKind::DroppedRoot,
            format!("nobody ({NOBODY}:{NOBODY}, no supplementary groups, no_new_privs): doctor never runs a program as root"),
        );
    }
    id(
        0,
        egid,
        IdentityKind::Refused,
        format!("not run: the caller is root and uid/gid {NOBODY} is not mapped in this user namespace, so there is no unprivileged identity to switch to; run doctor --run as an unprivileged user (e.g. start `binfmtd sandbox` as one)"),
    )
}

/// The identity for this process, from its euid/egid and `/proc/self/{uid,gid}_map`.
pub fn for_this_process() -> RunIdentity {
    // Without /proc the maps are unknown: treat it as the initial namespace (identity maps).
    let identity = "0 0 4294967295\n".to_string();
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or(identity.clone());
    let gid_map = std::fs::read_to_string("/proc/self/gid_map").unwrap_or(identity);
    choose(
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
        &uid_map,
        &gid_map,
    )
}

/// In the forked child: no supplementary groups, gid and uid [`NOBODY`], no_new_privs.
///
/// # Safety
/// Call only in a forked child before exec; uses only async-signal-safe syscalls.
pub unsafe fn drop_to_nobody() -> std::io::Result<()> {
    // SAFETY: plain syscalls with valid (null, zero-length) arguments.
    let ok = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(NOBODY) == 0
            && libc::setuid(NOBODY) == 0
            && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const INITIAL: &str = "         0          0 4294967295\n";

    #[test]
    fn identity_table() {
        let ns_root_only = "0 0 1\n";
        let rootless = "0 65534 1\n";
        let wide = "0 0 65536\n";
        let table = [
            ("caller", 1000, INITIAL, INITIAL, IdentityKind::Caller, 1000),
            (
                "host root",
                0,
                INITIAL,
                INITIAL,
                IdentityKind::DroppedRoot,
                NOBODY,
            ),
            (
                "root with 65534 mapped",
                0,
                wide,
                wide,
                IdentityKind::DroppedRoot,
                NOBODY,
            ),
            (
                "root of an unprivileged namespace",
                0,
                rootless,
                rootless,
                IdentityKind::NamespaceRoot,
                0,
            ),
            (
                "host root mapped alone",
                0,
                ns_root_only,
                ns_root_only,
                IdentityKind::Refused,
                0,
            ),
            (
                "gid 65534 unmapped",
                0,
                wide,
                ns_root_only,
                IdentityKind::Refused,
                0,
            ),
        ];
        for (what, euid, uid_map, gid_map, kind, uid) in table {
            let got = choose(euid, 7, uid_map, gid_map);
            assert_eq!((got.kind, got.uid), (kind, uid), "{what}: {got:?}");
            assert!(!got.note.is_empty(), "{what}");
        }
    }

    #[test]
    fn maps_are_read_by_range() {
        let map = "0 100000 65536\n65536 5 1\n";
        assert_eq!(outside_id(map, 0), Some(100000));
        assert_eq!(outside_id(map, 65534), Some(165534));
        assert_eq!(outside_id(map, 65536), Some(5));
        assert_eq!(outside_id(map, 65537), None);
        assert_eq!(outside_id("garbage\n", 0), None);
        assert_eq!(outside_id(INITIAL, 4_000_000_000), Some(4_000_000_000));
    }
}
