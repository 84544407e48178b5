//! Asks helper programs for their version, and accepts only a real answer.

use super::exec;
use std::path::Path;
use std::time::Duration;

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
