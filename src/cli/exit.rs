//! Stable exit codes, and the mapping from errors to them.

use crate::kernel::KernelError;
use crate::ops::OpsError;
use crate::sandbox::SandboxError;

pub const OK: i32 = 0;
pub const FAILED: i32 = 1;
pub const USAGE: i32 = 2;
pub const UNAVAILABLE: i32 = 3;
pub const PERMISSION: i32 = 4;
pub const DAEMON: i32 = 5;

fn kernel_code(e: &KernelError) -> i32 {
    match e {
        KernelError::NotMounted(_) | KernelError::Unsupported => UNAVAILABLE,
        KernelError::Permission { .. } => PERMISSION,
        KernelError::Mount { errno, .. } if *errno == nix::errno::Errno::EPERM => PERMISSION,
        KernelError::Mount { .. } => UNAVAILABLE,
        KernelError::Encode(_) | KernelError::NoSuchEntry { .. } => USAGE,
        // I/O errors are exit 2, as documented.
        KernelError::Io { .. } | KernelError::Parse(_) => USAGE,
        KernelError::Refused {
            errno: nix::errno::Errno::EPERM | nix::errno::Errno::EACCES,
            ..
        } => PERMISSION,
        _ => FAILED,
    }
}

fn state_code(e: &crate::persist::state::StateError) -> i32 {
    use crate::persist::state::StateError;
    let source = match e {
        StateError::Dir { source, .. }
        | StateError::Lock { source, .. }
        | StateError::Write { source, .. } => source,
    };
    match source.kind() {
        std::io::ErrorKind::PermissionDenied => PERMISSION,
        _ => USAGE,
    }
}

fn ops_code(e: &OpsError) -> i32 {
    match e {
        OpsError::Select(_) | OpsError::Catalog(_) => USAGE,
        OpsError::Kernel(k) => kernel_code(k),
        OpsError::State(e) => state_code(e),
        OpsError::Desired(_) => USAGE,
        OpsError::RolledBack { source, .. } => ops_code(source),
    }
}

/// The exit code for an error that ended a command.
pub fn code_for(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<OpsError>() {
            return ops_code(e);
        }
        if let Some(e) = cause.downcast_ref::<KernelError>() {
            return kernel_code(e);
        }
        if let Some(e) = cause.downcast_ref::<SandboxError>() {
            return match e {
                SandboxError::Ns(_) => UNAVAILABLE,
                SandboxError::Ops(o) => ops_code(o),
                SandboxError::HandlersFailed(_) => FAILED,
                SandboxError::Exec { errno, .. } if *errno == nix::errno::Errno::ENOENT => 127,
                SandboxError::Exec { .. } => 126,
                _ => USAGE,
            };
        }
        if let Some(e) = cause.downcast_ref::<super::remote::RemoteError>() {
            return match e {
                super::remote::RemoteError::Denied { .. } => PERMISSION,
                _ => DAEMON,
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::daemon::DaemonError>() {
            return match e {
                crate::daemon::DaemonError::Caps(_) => PERMISSION,
                crate::daemon::DaemonError::Config(_) => USAGE,
                _ => DAEMON,
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::doctor::DoctorError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::procs::ProcsError>() {
            return match e {
                crate::procs::ProcsError::Denied { .. } => PERMISSION,
                _ => USAGE,
            };
        }
        // A bad catalog or drop-in file is a configuration (usage) error, not "failed":
        // for doctor, 1 would read as "problems found".
        if cause.downcast_ref::<crate::model::UnknownFlag>().is_some()
            || cause
                .downcast_ref::<crate::catalog::CatalogError>()
                .is_some()
            || cause
                .downcast_ref::<crate::catalog::SelectError>()
                .is_some()
        {
            return USAGE;
        }
        // Any other I/O error (writing an export file, say) is exit 2, as documented.
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return USAGE;
        }
    }
    FAILED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_exit_2() {
        let invalid = crate::catalog::CatalogError::Invalid {
            file: "/etc/binfmtd/interpreters.d/x.toml".into(),
            reason: "bad".into(),
        };
        let io = crate::catalog::CatalogError::Io {
            dir: "/etc/binfmtd/interpreters.d".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let table: [(anyhow::Error, i32); 6] = [
            (
                anyhow::Error::new(invalid).context("cannot load the handler catalog"),
                USAGE,
            ),
            (anyhow::Error::new(io), USAGE),
            (
                anyhow::Error::new(crate::catalog::SelectError::Unknown("vax".into())),
                USAGE,
            ),
            (anyhow::Error::new(crate::model::UnknownFlag('X')), USAGE),
            (anyhow::anyhow!("something else"), FAILED),
            (
                anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotADirectory))
                    .context("cannot write /proc/version/dir/binfmtd-export.conf"),
                USAGE,
            ),
        ];
        for (err, want) in table {
            assert_eq!(code_for(&err), want, "{err:#}");
        }
    }
}
