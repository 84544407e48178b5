//! Version queries: the running kernel's release, `major.minor` parsing, a program's answer.

use super::exec;
use std::path::Path;
use std::time::Duration;

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

/// The first non-empty line `program ARGS` prints (stdout, then stderr), when it exits 0
/// within `timeout`. A program that fails prints an error, never a version: that gives `None`.
pub fn first_line(program: &Path, args: &[&str], timeout: Duration) -> Option<String> {
    let out = exec::capture(program, args, timeout)
        .map_err(|e| tracing::debug!("no version from {}: {e}", program.display()))
        .ok()?;
    if !out.status.success() {
        tracing::debug!(
            "no version from {}: it exited with {}",
            program.display(),
            out.status
        );
        return None;
    }
    out.stdout
        .lines()
        .chain(out.stderr.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// The value of the first `LABEL value` line `program ARGS` prints (stdout, then stderr),
/// whatever its exit status: Rosetta prints `version: Rosetta-NNN` with its usage error.
pub fn labelled(program: &Path, args: &[&str], label: &str, timeout: Duration) -> Option<String> {
    let out = exec::capture(program, args, timeout)
        .map_err(|e| tracing::debug!("no {label} line from {}: {e}", program.display()))
        .ok()?;
    out.stdout.lines().chain(out.stderr.lines()).find_map(|l| {
        l.trim()
            .strip_prefix(label)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    })
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

    #[test]
    fn first_line_needs_success_and_labelled_reads_both_streams() {
        let sh = Path::new("/bin/sh");
        let t = Duration::from_secs(5);
        let table: [(&str, Option<&str>); 4] = [
            (
                "echo; echo '  tool version 1.2  '; echo more",
                Some("tool version 1.2"),
            ),
            (
                "echo 'tool: has to be run some other way' >&2; exit 1",
                None,
            ),
            ("echo 'oops, not a version'; exit 1", None),
            ("exit 0", None),
        ];
        for (script, want) in table {
            assert_eq!(
                first_line(sh, &["-c", script], t).as_deref(),
                want,
                "{script}"
            );
        }
        let rosetta = "echo usage >&2; echo 'version: Rosetta-332.1' >&2; exit 1";
        assert_eq!(
            labelled(sh, &["-c", rosetta], "version:", t).as_deref(),
            Some("Rosetta-332.1")
        );
        assert_eq!(labelled(sh, &["-c", "echo version:"], "version:", t), None);
        assert_eq!(first_line(Path::new("/nonexistent/tool"), &[], t), None);
    }
}
