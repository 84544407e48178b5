//! Command-line arguments of `binfmtd doctor` and their validation.

use std::path::PathBuf;

/// `binfmtd doctor PATH [--root DIR] | --root DIR --all | PATH --run [--timeout S] [-- ARGS] | --pid PID [--sample S]`
///
/// Exit status: 0 the program will run; 1 problems were found; 2 usage or I/O error.
#[derive(clap::Args, Debug, Clone, PartialEq)]
#[command(
    after_help = "Exit status: 0 = it will run, 1 = problems found, 2 = usage or I/O error or no such PID, 4 = the PID cannot be read (run as root or as its owner).\nFinding ids are explained in docs/doctor.md."
)]
pub struct DoctorArgs {
    /// The program or script to diagnose, resolved inside --root as the kernel would run it.
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Root filesystem the program runs in (an unpacked image, build root, container rootfs).
    /// Symlinks and `..` are resolved inside it, as if chrooted.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Diagnose every ELF file under --root and summarise by finding.
    #[arg(long, conflicts_with_all = ["path", "run"])]
    pub all: bool,
    /// Also execute PATH (with the given ARGS) and classify how it exits or hangs.
    #[arg(long)]
    pub run: bool,
    /// Seconds before a --run is considered hung.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
    /// Arguments passed to the program with --run.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<std::ffi::OsString>,
    /// Diagnose a running process (a host PID, e.g. from `binfmtd ps`): sample its threads,
    /// judge the binary it runs through /proc/PID/root, match known defects.
    #[arg(long, value_name = "PID", conflicts_with_all = ["path", "all", "run"])]
    pub pid: Option<i32>,
    /// Seconds between the two samples of --pid.
    #[arg(long, value_name = "S", default_value_t = 2.0, requires = "pid")]
    pub sample: f64,
}

/// A combination of arguments that makes no sense; the message says what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("give a PATH to diagnose, or --all to scan the whole --root (e.g. `binfmtd doctor --root ./rootfs --all`)")]
    NothingToDo,
    #[error("--all scans every file and cannot be combined with a PATH; drop one of them")]
    AllWithPath,
    #[error("--run needs a PATH to execute (e.g. `binfmtd doctor ./app --run -- --version`)")]
    RunWithoutPath,
    #[error("arguments after `--` are only used with --run; add --run or drop them")]
    ArgsWithoutRun,
    #[error("--timeout must be at least 1 second")]
    ZeroTimeout,
    #[error("{1} {0} is not valid UTF-8, which doctor cannot report on; rename it, or give a symlink with a UTF-8 name")]
    NotUtf8(String, &'static str),
    #[error("--sample must be between 0.1 and 60 seconds (e.g. --sample 2)")]
    BadSample,
}

/// A non-UTF-8 name for a message: invalid bytes as `\xHH`, controls escaped.
fn shown(s: &std::ffi::OsStr) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for chunk in s.as_encoded_bytes().utf8_chunks() {
        out.push_str(&crate::text::term(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

impl DoctorArgs {
    /// Checks the combinations clap cannot express.
    pub fn validate(&self) -> Result<(), UsageError> {
        if self.pid.is_some() {
            return match self.sample {
                s if (0.1..=60.0).contains(&s) => Ok(()),
                _ => Err(UsageError::BadSample),
            };
        }
        match (&self.path, self.all, self.run) {
            (Some(_), true, _) => Err(UsageError::AllWithPath),
            (None, false, true) | (None, true, true) => Err(UsageError::RunWithoutPath),
            (None, false, false) => Err(UsageError::NothingToDo),
            _ if !self.args.is_empty() && !self.run => Err(UsageError::ArgsWithoutRun),
            _ if self.run && self.timeout == 0 => Err(UsageError::ZeroTimeout),
            (Some(p), ..) if p.to_str().is_none() => {
                Err(UsageError::NotUtf8(shown(p.as_os_str()), "PATH"))
            }
            _ if self.root.to_str().is_none() => {
                Err(UsageError::NotUtf8(shown(self.root.as_os_str()), "--root"))
            }
            _ => Ok(()),
        }
    }

    /// Arguments for one file at the default root.
    pub fn for_path(path: impl Into<PathBuf>) -> Self {
        DoctorArgs {
            path: Some(path.into()),
            root: PathBuf::from("/"),
            all: false,
            run: false,
            timeout: 10,
            args: vec![],
            pid: None,
            sample: 2.0,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: DoctorArgs,
    }

    fn parse(v: &[&str]) -> Result<DoctorArgs, String> {
        let cli = Cli::try_parse_from(std::iter::once("doctor").chain(v.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.a.validate().map_err(|e| e.to_string())?;
        Ok(cli.a)
    }

    #[test]
    fn combinations() {
        let a = parse(&["./app"]).unwrap();
        assert_eq!(a.root, PathBuf::from("/"));
        assert_eq!(a.timeout, 10);
        let a = parse(&["--root", "/r", "--all"]).unwrap();
        assert!(a.all && a.path.is_none());
        let a = parse(&["./app", "--run", "--timeout", "3", "--", "-x", "y"]).unwrap();
        assert_eq!(a.args, ["-x", "y"]);
        assert_eq!(a.timeout, 3);
        let a = parse(&["--pid", "42", "--sample", "0.5"]).unwrap();
        assert_eq!((a.pid, a.sample), (Some(42), 0.5));
        for (bad, want) in [
            (&[][..], "give a PATH"),
            (&["--run"][..], "--run needs a PATH"),
            (&["./app", "--", "x"][..], "only used with --run"),
            (&["./app", "--run", "--timeout", "0"][..], "at least 1"),
            (&["./app", "--all"][..], "cannot be used with"),
            (&["--pid", "1", "./app"][..], "cannot be used with"),
            (&["--pid", "1", "--sample", "0"][..], "between 0.1 and 60"),
            (&["--sample", "3"][..], "--pid"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }
}
