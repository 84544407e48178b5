//! Capability checks, so that "permission denied" always says which capability is missing.

use caps::{CapSet, Capability};

/// True when the effective set holds `cap`.
pub fn has(cap: Capability) -> bool {
    caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false)
}

/// A hint for a refused binfmt_misc write, naming the missing capability.
pub fn missing_hint() -> String {
    if has(Capability::CAP_SYS_ADMIN) {
        "CAP_SYS_ADMIN is present but not in the user namespace that owns this binfmt_misc instance; run binfmtd in that namespace".to_string()
    } else {
        "CAP_SYS_ADMIN is missing; run as root (`sudo binfmtd ...`), go through the binfmtd daemon, or use `binfmtd sandbox` for a private, rootless instance".to_string()
    }
}
