//! Doctor over D-Bus: checks the caller's open file descriptor and hands it to the doctor.

use super::errors::Error;
use crate::daemon::backend::Observed;
use std::collections::HashMap;
use std::os::fd::AsFd;
use zbus::{OwnedFd, OwnedVariant};

/// Option keys that would make the daemon open a path on the caller's behalf; refused.
const PATH_OPTIONS: &[&str] = &["path", "file", "root"];

/// Validates the request (pure part): no path-like options.
pub fn check_options(options: &HashMap<String, OwnedVariant>) -> Result<(), Error> {
    if let Some(key) = PATH_OPTIONS.iter().find(|k| options.contains_key(**k)) {
        return Err(Error::InvalidArgument(format!(
            "option {key:?} names a path, and the daemon never opens paths for callers; open the file yourself and pass the descriptor (D-Bus type h)"
        )));
    }
    Ok(())
}

/// Runs the doctor on `fd`. The fd must be an open regular file.
pub async fn run(
    fd: OwnedFd,
    options: &HashMap<String, OwnedVariant>,
    _view: &Observed,
) -> Result<String, Error> {
    check_options(options)?;
    let stat = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot inspect the passed descriptor: {e}; pass a descriptor of an open file"
        ))
    })?;
    let kind = stat.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG {
        return Err(Error::InvalidArgument(format!(
            "the passed descriptor is not a regular file (mode {:o}); pass a descriptor of the binary to diagnose",
            stat.st_mode
        )));
    }
    Err(Error::NotSupported(
        "this daemon was built without the doctor; run `binfmtd doctor FILE` on the host instead"
            .into(),
    ))
}
