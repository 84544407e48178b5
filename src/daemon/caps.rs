//! Capabilities: require CAP_SYS_ADMIN, keep CAP_SYS_CHROOT, drop every other one from the
//! effective, permitted, inheritable, ambient and bounding sets.

use caps::{CapSet, Capability, CapsHashSet};

/// Required: writing binfmt_misc's register and status.
pub const REQUIRED: Capability = Capability::CAP_SYS_ADMIN;
/// Kept: CAP_SYS_ADMIN, and CAP_SYS_CHROOT so that verification probes run chrooted in an
/// empty directory, which is what proves an entry's F flag. Nothing else.
pub const KEEP: [Capability; 2] = [Capability::CAP_SYS_ADMIN, Capability::CAP_SYS_CHROOT];

/// Capability problems; each says how to start the daemon correctly.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("binfmtd daemon needs CAP_SYS_ADMIN to write binfmt_misc, and this process lacks it; start it as root (e.g. via binfmtd.service) or with CapabilityBoundingSet=CAP_SYS_ADMIN")]
    Missing,
    #[error("cannot {action} the {set} capability set: {message}; run the daemon as root with CAP_SETPCAP available at start, or start it from binfmtd.service which drops them already")]
    Drop {
        action: &'static str,
        set: &'static str,
        message: String,
    },
}

/// What to remove from a set so that at most [`KEEP`] remains (pure).
pub fn excess(current: &CapsHashSet) -> Vec<Capability> {
    let mut extra: Vec<Capability> = current
        .iter()
        .copied()
        .filter(|c| !KEEP.contains(c))
        .collect();
    extra.sort_by_key(|c| c.index());
    extra
}

fn read(set: CapSet, name: &'static str) -> Result<CapsHashSet, CapsError> {
    caps::read(None, set).map_err(|e| CapsError::Drop {
        action: "read",
        set: name,
        message: e.to_string(),
    })
}

/// Checks CAP_SYS_ADMIN, then drops everything else. Only touches sets that hold more than
/// CAP_SYS_ADMIN, so under binfmtd.service (whose sandbox already did it) it makes no syscall
/// that the unit's system call filter would refuse.
pub fn check_and_drop() -> Result<(), CapsError> {
    let effective = read(CapSet::Effective, "effective")?;
    if !effective.contains(&REQUIRED) {
        return Err(CapsError::Missing);
    }
    // Bounding first: dropping from it needs CAP_SETPCAP, which is dropped just below.
    for cap in excess(&read(CapSet::Bounding, "bounding")?) {
        caps::drop(None, CapSet::Bounding, cap).map_err(|e| CapsError::Drop {
            action: "drop from",
            set: "bounding",
            message: format!("{cap}: {e}"),
        })?;
    }
    let keep: CapsHashSet = KEEP.into_iter().filter(|c| effective.contains(c)).collect();
    for (set, name) in [
        (CapSet::Ambient, "ambient"),
        (CapSet::Inheritable, "inheritable"),
    ] {
        if !read(set, name)?.is_empty() {
            caps::clear(None, set).map_err(|e| CapsError::Drop {
                action: "clear",
                set: name,
                message: e.to_string(),
            })?;
        }
    }
    for (set, name) in [
        (CapSet::Effective, "effective"),
        (CapSet::Permitted, "permitted"),
    ] {
        if !excess(&read(set, name)?).is_empty() {
            caps::set(None, set, &keep).map_err(|e| CapsError::Drop {
                action: "reduce",
                set: name,
                message: e.to_string(),
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excess_keeps_only_sys_admin_and_sys_chroot() {
        let set = |caps: &[Capability]| caps.iter().copied().collect::<CapsHashSet>();
        let cases: [(CapsHashSet, Vec<Capability>); 5] = [
            (set(&[]), vec![]),
            (set(&KEEP), vec![]),
            (set(&[REQUIRED]), vec![]),
            (
                set(&[
                    REQUIRED,
                    Capability::CAP_SYS_CHROOT,
                    Capability::CAP_NET_ADMIN,
                ]),
                vec![Capability::CAP_NET_ADMIN],
            ),
            (
                set(&[Capability::CAP_SETPCAP, Capability::CAP_CHOWN]),
                vec![Capability::CAP_CHOWN, Capability::CAP_SETPCAP],
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(excess(&input), expected);
        }
    }
}
