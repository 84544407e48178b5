//! Doctor over D-Bus: checks the request and the caller's open file descriptor, then hands the
//! descriptor to the doctor. The daemon never opens a path on a caller's behalf.

use super::errors::Error;
use crate::daemon::service::Service;
use std::collections::HashMap;
use std::os::fd::AsFd;
use zbus::{OwnedFd, OwnedVariant};

/// Option keys that would make the daemon open a path on the caller's behalf; refused.
const PATH_OPTIONS: &[&str] = &["path", "file", "root"];

/// Validates the options (pure) and returns the display name (`name`, default `fd`).
pub fn check_options(options: &HashMap<String, OwnedVariant>) -> Result<String, Error> {
    if let Some(key) = PATH_OPTIONS.iter().find(|k| options.contains_key(**k)) {
        return Err(Error::InvalidArgument(format!(
            "option {key:?} names a path, and the daemon never opens paths for callers; open the file yourself and pass the descriptor (D-Bus type h)"
        )));
    }
    if let Some(key) = options.keys().find(|k| k.as_str() != "name") {
        return Err(Error::InvalidArgument(format!(
            "unknown option {key:?}; the only option is name (s), the file name to show"
        )));
    }
    match options.get("name") {
        None => Ok("fd".into()),
        Some(v) => v.downcast_ref::<String>().map_err(|_| {
            Error::InvalidArgument(format!(
                "option \"name\" must be a string (variant type s), got type {}",
                v.value_signature()
            ))
        }),
    }
}

/// Runs the doctor on `fd`, which must be an open regular file.
pub async fn run(
    fd: OwnedFd,
    options: &HashMap<String, OwnedVariant>,
    engine: &Service,
) -> Result<String, Error> {
    let name = check_options(options)?;
    let stat = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot inspect the passed descriptor: {e}; pass a descriptor of an open file"
        ))
    })?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::InvalidArgument(format!(
            "the passed descriptor is not a regular file (mode {:o}); pass a descriptor of the binary to diagnose",
            stat.st_mode
        )));
    }
    Ok(engine.doctor(fd.into(), name).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::Variant;

    #[test]
    fn options_table() {
        let opts = |pairs: &[(&str, Variant<'static>)]| -> HashMap<String, OwnedVariant> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), OwnedVariant::try_from(v).unwrap()))
                .collect()
        };
        assert_eq!(check_options(&opts(&[])).unwrap(), "fd");
        assert_eq!(
            check_options(&opts(&[("name", Variant::new("app"))])).unwrap(),
            "app"
        );
        for bad in [
            opts(&[("path", Variant::new("/etc/shadow"))]),
            opts(&[("root", Variant::new("/"))]),
            opts(&[("name", Variant::new(1u32))]),
            opts(&[("run", Variant::new(true))]),
        ] {
            assert_eq!(
                check_options(&bad).unwrap_err().dbus_name(),
                "org.binfmtd1.Error.InvalidArgument"
            );
        }
    }
}
