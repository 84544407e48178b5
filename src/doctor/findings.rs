//! The finding type: a stable id, a severity, a one-line message, evidence and the fix.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How bad a finding is. Only `Error` makes `doctor` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A fact worth knowing; nothing will fail because of it.
    Info,
    /// May fail depending on how or where the program is started.
    Warning,
    /// The program will not run (correctly) as things stand.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

macro_rules! finding_ids {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, )*) => {
        /// Every finding `doctor` can report. The kebab-case ids are a stable interface:
        /// they appear in JSON, in docs/doctor.md and in docs/schemas/doctor.schema.json.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum FindingId {
            $( $(#[$doc])* #[serde(rename = $id)] $variant, )*
        }

        impl FindingId {
            /// All ids, in documentation order.
            pub const ALL: &'static [FindingId] = &[$(FindingId::$variant,)*];

            /// The stable kebab-case id.
            pub fn as_str(self) -> &'static str {
                match self { $(FindingId::$variant => $id,)* }
            }
        }
    };
}

finding_ids! {
    /// The file does not exist inside the root.
    NotFound = "not-found",
    /// A FIFO, device, socket or directory: nothing the kernel can execute.
    NotRegularFile = "not-regular-file",
    /// The file has no execute permission bit.
    NotExecutable = "not-executable",
    /// A zero-byte file.
    EmptyFile = "empty-file",
    /// A Mach-O program (macOS).
    MachO = "macho-binary",
    /// A PE program (Windows).
    PeBinary = "pe-binary",
    /// Text without a `#!` line.
    TextFile = "text-file",
    /// Binary data that is no known executable format.
    UnknownFormat = "unknown-format",
    /// Truncated or corrupt ELF.
    ElfCorrupt = "elf-corrupt",
    /// ELF but not an executable (relocatable object, core dump).
    ElfNotExecutable = "elf-not-executable",
    /// ELF for another operating system (FreeBSD, ...).
    ElfForeignOs = "elf-foreign-os",
    /// A `#!` script; its interpreter is diagnosed instead.
    Script = "script",
    /// The `#!` interpreter does not exist inside the root.
    ScriptInterpreterMissing = "script-interpreter-missing",
    /// Too many nested `#!` interpreters (the kernel stops after 4).
    ScriptNesting = "script-nesting",
    /// The binary runs natively on this host: no handler is involved.
    Native = "native",
    /// binfmt_misc is not mounted, so foreign binaries fail with "exec format error".
    BinfmtNotMounted = "binfmt-not-mounted",
    /// The global status of binfmt_misc is disabled.
    BinfmtDisabled = "binfmt-disabled",
    /// No entry matches the file.
    NoHandler = "no-handler",
    /// Matching entries exist but all are disabled.
    HandlerDisabled = "handler-disabled",
    /// Several enabled entries match; the newest wins.
    HandlerShadowed = "handler-shadowed",
    /// Entry files that could not be parsed.
    HandlerUnreadable = "handler-unreadable",
    /// The winning entry's interpreter does not exist.
    InterpreterMissing = "interpreter-missing",
    /// The winning entry's interpreter is not executable.
    InterpreterNotExecutable = "interpreter-not-executable",
    /// The winning entry's interpreter is dynamically linked.
    InterpreterDynamic = "interpreter-dynamic",
    /// The entry lacks F while the binary lives in another root.
    HandlerNeedsFixBinary = "handler-needs-fix-binary",
    /// The PT_INTERP loader is missing from the root.
    LoaderMissing = "loader-missing",
    /// The root's C library differs from the one the binary was built for.
    LoaderLibcMismatch = "loader-libc-mismatch",
    /// The loader exists but is not an ELF of the binary's architecture.
    LoaderWrongArch = "loader-wrong-arch",
    /// A DT_NEEDED library is not found.
    LibraryMissing = "library-missing",
    /// A DT_NEEDED library is found only for another architecture.
    LibraryWrongArch = "library-wrong-arch",
    /// setuid/setgid binary whose entry lacks C.
    SetuidNeedsCredentials = "setuid-needs-credentials",
    /// Multi-call binary or shell whose entry lacks P.
    Argv0NeedsPreserve = "argv0-needs-preserve",
    /// The binary needs an x86-64 level the translator or CPU does not offer.
    IsaLevelUnsupported = "isa-level-unsupported",
    /// Architecture extensions the binary declares (informational).
    IsaFeatures = "isa-features",
    /// PT_LOAD alignment below the host page size.
    PageAlignTooSmall = "page-align-too-small",
    /// jemalloc-linked binary on a host with pages larger than 4 KiB.
    JemallocPageSize = "jemalloc-page-size",
    /// A known defect of the chosen emulator version affects this binary.
    KnownEmulatorDefect = "known-emulator-defect",
    /// `--run`: the program exited 0.
    RunOk = "run-ok",
    /// `--run`: the program exited with a non-zero status.
    RunFailed = "run-failed",
    /// `--run`: the program was killed by a signal.
    RunSignaled = "run-signaled",
    /// `--run`: timed out while blocked in a host syscall.
    RunHangBlocked = "run-hang-blocked",
    /// `--run`: timed out while spinning on a CPU.
    RunHangSpinning = "run-hang-spinning",
    /// `--run`: could not start the program at all.
    RunExecFailed = "run-exec-failed",
}

impl fmt::Display for FindingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One piece of evidence: a label and a value (a path, bytes, an entry name...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub label: String,
    pub value: String,
}

/// One diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: FindingId,
    pub severity: Severity,
    /// One line saying what is wrong.
    pub message: String,
    /// What the finding is about (library name, loader path, entry name); summaries group by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub evidence: Vec<Evidence>,
    /// What to run or change; absent for purely informational findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn new(id: FindingId, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            id,
            severity,
            message: message.into(),
            subject: None,
            evidence: Vec::new(),
            fix: None,
        }
    }
    pub fn error(id: FindingId, message: impl Into<String>) -> Self {
        Self::new(id, Severity::Error, message)
    }
    pub fn warning(id: FindingId, message: impl Into<String>) -> Self {
        Self::new(id, Severity::Warning, message)
    }
    pub fn info(id: FindingId, message: impl Into<String>) -> Self {
        Self::new(id, Severity::Info, message)
    }
    /// Adds one evidence line.
    pub fn with(mut self, label: &str, value: impl fmt::Display) -> Self {
        self.evidence.push(Evidence {
            label: label.to_string(),
            value: value.to_string(),
        });
        self
    }
    pub fn about(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_kebab_case_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for id in FindingId::ALL {
            let s = id.as_str();
            assert!(seen.insert(s), "duplicate id {s}");
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{s}"
            );
            let json = serde_json::to_string(id).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            let back: FindingId = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *id);
        }
    }

    #[test]
    fn severity_orders_error_highest() {
        assert!(Severity::Error > Severity::Warning && Severity::Warning > Severity::Info);
    }
}
