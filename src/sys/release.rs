//! The running kernel's release, and the `major.minor` of release and version strings.

/// `uname -r`, or an empty string when uname fails.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The first two numbers of a version string: `6.18.44-foo` gives (6, 18).
pub fn major_minor(text: &str) -> Option<(u32, u32)> {
    let mut it = text.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_minor_of_releases_and_version_lines() {
        let table = [
            ("6.7.0-rc1", Some((6, 7))),
            ("6.18.44-fc-v595", Some((6, 18))),
            ("7.2.22 (Debian 1:7.2+dfsg-7)", Some((7, 2))),
            ("6", None),
            ("garbage", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(major_minor(text), want, "{text}");
        }
        assert!(major_minor(&kernel_release()).is_some());
    }
}
