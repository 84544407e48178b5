//! Typed D-Bus errors of org.binfmtd1.Manager (`org.binfmtd1.Error.*`), each saying what to do.

use crate::daemon::backend::ServiceError;
use zbus::DBusError;

/// Every error a method of `org.binfmtd1.Manager` can reply with. The D-Bus name is
/// `org.binfmtd1.Error.<Variant>`; the message says what happened and what to do next.
#[derive(Debug, DBusError)]
#[zbus(prefix = "org.binfmtd1.Error")]
pub enum Error {
    /// A failure of the bus itself (not one of ours).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller is neither uid 0 nor authorized by polkit for `org.binfmtd1.manage`.
    AccessDenied(String),
    /// polkit could authorize the caller after authentication, but `interactive` was false.
    InteractiveAuthorizationRequired(String),
    /// An argument or option is malformed or unknown.
    InvalidArgument(String),
    /// A platform or handler name is not in the catalog.
    UnknownPlatform(String),
    /// The kernel refused or binfmt_misc is unusable (not mounted, not supported).
    Kernel(String),
    /// The request conflicts with entries binfmtd does not own (use force to replace them).
    Conflict(String),
    /// The operation is not available in this build or on this host.
    NotSupported(String),
    /// Any other failure of the operation; the message names the object and the remedy.
    Failed(String),
}

impl From<ServiceError> for Error {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::UnknownPlatform(m) => Error::UnknownPlatform(m),
            ServiceError::InvalidArgument(m) => Error::InvalidArgument(m),
            ServiceError::Kernel(m) => Error::Kernel(m),
            ServiceError::Busy(m) | ServiceError::Failed(m) => Error::Failed(m),
        }
    }
}

impl Error {
    /// The D-Bus error name this error replies with (for logs and tests).
    pub fn dbus_name(&self) -> String {
        zbus::DBusError::name(self).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespaced_under_org_binfmtd1_error() {
        let cases = [
            (
                Error::AccessDenied("x".into()),
                "org.binfmtd1.Error.AccessDenied",
            ),
            (
                Error::InteractiveAuthorizationRequired("x".into()),
                "org.binfmtd1.Error.InteractiveAuthorizationRequired",
            ),
            (
                Error::InvalidArgument("x".into()),
                "org.binfmtd1.Error.InvalidArgument",
            ),
            (
                Error::UnknownPlatform("x".into()),
                "org.binfmtd1.Error.UnknownPlatform",
            ),
            (Error::Kernel("x".into()), "org.binfmtd1.Error.Kernel"),
            (Error::Conflict("x".into()), "org.binfmtd1.Error.Conflict"),
            (
                Error::NotSupported("x".into()),
                "org.binfmtd1.Error.NotSupported",
            ),
            (Error::Failed("x".into()), "org.binfmtd1.Error.Failed"),
        ];
        for (error, name) in cases {
            assert_eq!(error.dbus_name(), name);
            assert_eq!(zbus::DBusError::description(&error), Some("x"));
        }
    }
}
