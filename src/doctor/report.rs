//! The report (stable JSON shape `binfmtd.doctor/v1`) and its human rendering.

use super::context::HostFacts;
use super::elf::{ElfFacts, Linkage};
use super::findings::{Finding, FindingId, Severity};
use super::run::RunOutcome;
use crate::text::term;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Version tag of the JSON shape; bump on incompatible changes.
pub const SCHEMA: &str = "binfmtd.doctor/v1";

/// Which form of the command produced the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    File,
    All,
    Run,
    Fd,
    Pid,
}

/// ELF identity as shown to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub class: u8,
    pub endianness: &'static str,
    pub machine: String,
    pub osabi: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abi: Option<String>,
    pub linkage: Linkage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qemu_arch: Option<String>,
    pub native: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x86_64_level: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub go_version: Option<String>,
}

impl Identity {
    pub fn of(f: &ElfFacts, host: &HostFacts) -> Identity {
        Identity {
            class: f.class,
            endianness: if f.little_endian { "little" } else { "big" },
            machine: f.machine_name.clone(),
            osabi: f.osabi,
            abi: f.abi.clone(),
            linkage: f.linkage,
            interpreter: f.interp.clone(),
            needed: f.needed.clone(),
            platform: f.platform.clone(),
            qemu_arch: f.qemu_arch.clone(),
            native: f
                .qemu_arch
                .as_ref()
                .is_some_and(|a| host.native.contains(a)),
            x86_64_level: f.x86_isa_level,
            go_version: f.go_version.clone(),
        }
    }
}

/// One diagnosed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectReport {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_path: Option<String>,
    /// `#!` scripts followed to reach the program, outermost first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub script_chain: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The binfmt_misc entry the kernel picks, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    pub findings: Vec<Finding>,
}

impl SubjectReport {
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// Findings of one id and subject, counted over a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub id: FindingId,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub count: u64,
    /// The message of the first occurrence.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Up to five paths that have it.
    pub examples: Vec<String>,
}

/// Counts over every diagnosed file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Regular files looked at.
    pub files: u64,
    /// ELF programs and libraries among them.
    pub elf: u64,
    /// ELF files with no warning or error.
    pub ok: u64,
    pub with_errors: u64,
    pub with_warnings: u64,
    pub groups: Vec<Group>,
}

/// Where binfmt_misc stood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BinfmtState {
    pub path: String,
    pub mounted: bool,
    pub enabled: bool,
    pub entries: usize,
}

/// The whole result of one `doctor` invocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub mode: Mode,
    pub root: String,
    pub host: HostFacts,
    pub binfmt: BinfmtState,
    /// File mode: one entry. Scan mode: only files with warnings or errors.
    pub subjects: Vec<SubjectReport>,
    pub summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunOutcome>,
    /// `--pid`: the sampled process, its verdict and next steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<super::pid::PidOutcome>,
}

impl Report {
    /// 0: it will run; 1: problems found (any error finding).
    pub fn exit_code(&self) -> i32 {
        let run_failed = self.run.as_ref().is_some_and(|r| !r.success());
        let stuck = self.process.as_ref().is_some_and(|p| p.problem());
        if self.summary.with_errors > 0 || run_failed || stuck {
            1
        } else {
            0
        }
    }
}

/// Accumulates findings by (id, subject) with bounded memory.
#[derive(Debug, Default)]
pub struct Tally {
    pub summary: Summary,
    groups: BTreeMap<(FindingId, Option<String>), Group>,
}

impl Tally {
    pub fn add(&mut self, s: &SubjectReport, is_elf: bool) {
        self.summary.files += 1;
        self.summary.elf += is_elf as u64;
        match s.worst() {
            Some(Severity::Error) => self.summary.with_errors += 1,
            Some(Severity::Warning) => self.summary.with_warnings += 1,
            _ if is_elf => self.summary.ok += 1,
            _ => {}
        }
        for f in &s.findings {
            let g = self
                .groups
                .entry((f.id, f.subject.clone()))
                .or_insert_with(|| Group {
                    id: f.id,
                    severity: f.severity,
                    subject: f.subject.clone(),
                    count: 0,
                    message: f.message.clone(),
                    fix: f.fix.clone(),
                    examples: vec![],
                });
            g.count += 1;
            g.severity = g.severity.max(f.severity);
            if g.examples.len() < 5 {
                g.examples.push(s.path.clone());
            }
        }
    }
    pub fn merge(&mut self, other: Tally) {
        let o = other.summary;
        self.summary.files += o.files;
        self.summary.elf += o.elf;
        self.summary.ok += o.ok;
        self.summary.with_errors += o.with_errors;
        self.summary.with_warnings += o.with_warnings;
        for (k, g) in other.groups {
            match self.groups.get_mut(&k) {
                Some(mine) => {
                    mine.count += g.count;
                    mine.severity = mine.severity.max(g.severity);
                    let room = 5usize.saturating_sub(mine.examples.len());
                    mine.examples.extend(g.examples.into_iter().take(room));
                }
                None => {
                    self.groups.insert(k, g);
                }
            }
        }
    }
    pub fn finish(mut self) -> Summary {
        let mut groups: Vec<Group> = self.groups.into_values().collect();
        groups.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(b.count.cmp(&a.count))
                .then(a.id.cmp(&b.id))
        });
        self.summary.groups = groups;
        self.summary
    }
}

struct Paint(bool);

impl Paint {
    fn sev(&self, s: Severity, text: &str) -> String {
        if !self.0 {
            return text.to_string();
        }
        let code = match s {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Info => "36",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
    fn dim(&self, text: &str) -> String {
        if self.0 {
            format!("\x1b[2m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

fn heading(s: Severity) -> &'static str {
    match s {
        Severity::Error => "Errors (it will not run)",
        Severity::Warning => "Warnings (it may fail)",
        Severity::Info => "Notes",
    }
}

/// Human rendering: grouped by severity, with the fix under each finding.
pub fn render_human(r: &Report, color: bool) -> String {
    let p = Paint(color);
    let mut o = String::new();
    if r.mode == Mode::All {
        render_scan(r, &p, &mut o);
    } else {
        for s in &r.subjects {
            render_subject(r, s, &p, &mut o);
        }
    }
    if let Some(run) = &r.run {
        let _ = writeln!(o, "\nRun: {}", term(&run.describe()));
        let _ = writeln!(o, "  ran as: {}", term(&run.identity.note));
        for line in run.stderr_tail.iter() {
            let _ = writeln!(o, "  {}", p.dim(&format!("stderr| {}", term(line))));
        }
        if !run.guest_syscalls.is_empty() {
            let _ = writeln!(o, "  last guest syscalls (QEMU_STRACE):");
            for line in &run.guest_syscalls {
                let _ = writeln!(o, "    {}", term(line));
            }
        }
    }
    if let Some(pr) = &r.process {
        render_process(pr, &mut o);
    }
    let verdict = match r.exit_code() {
        0 => p.sev(Severity::Info, "Verdict: it will run."),
        _ => p.sev(
            Severity::Error,
            "Verdict: problems found; see the errors above.",
        ),
    };
    let _ = writeln!(o, "\n{verdict}");
    o
}

fn render_subject(r: &Report, s: &SubjectReport, p: &Paint, o: &mut String) {
    let _ = writeln!(o, "{} (root {})", term(&s.path), term(&r.root));
    for (i, c) in s.script_chain.iter().enumerate() {
        let _ = writeln!(o, "  {}script {} -> interpreter", "  ".repeat(i), term(c));
    }
    if let Some(id) = &s.identity {
        let mut line = format!("{}-bit {}-endian {}", id.class, id.endianness, id.machine);
        if let Some(abi) = &id.abi {
            line += &format!(" ({abi})");
        }
        line += &format!(", {:?}", id.linkage)
            .to_lowercase()
            .replace("staticpie", "static-pie")
            .replace("sharedlibrary", "shared library");
        if let Some(pl) = &id.platform {
            line += &format!(", {pl}");
        }
        line += if id.native { ", native" } else { ", foreign" };
        let _ = writeln!(o, "  {}", term(&line));
        if let Some(i) = &id.interpreter {
            let _ = writeln!(
                o,
                "  loader {}; needs {}",
                term(i),
                if id.needed.is_empty() {
                    "no libraries".to_string()
                } else {
                    term(&id.needed.join(", ")).into_owned()
                }
            );
        }
    }
    if let Some(h) = &s.handler {
        let _ = writeln!(o, "  handler: binfmt_misc entry {}", term(h));
    }
    for sev in [Severity::Error, Severity::Warning, Severity::Info] {
        let list: Vec<&Finding> = s.findings.iter().filter(|f| f.severity == sev).collect();
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(o, "\n{}", p.sev(sev, heading(sev)));
        for f in list {
            let _ = writeln!(o, "  [{}] {}", p.sev(sev, f.id.as_str()), term(&f.message));
            for e in &f.evidence {
                let ev = format!("{}: {}", term(&e.label), term(&e.value));
                let _ = writeln!(o, "      {}", p.dim(&ev));
            }
            if let Some(fix) = &f.fix {
                let _ = writeln!(o, "      fix: {}", term(fix));
            }
        }
    }
}

fn render_scan(r: &Report, p: &Paint, o: &mut String) {
    let s = &r.summary;
    let _ = writeln!(
        o,
        "Scanned {} files under {}: {} ELF files.",
        s.files,
        term(&r.root),
        s.elf
    );
    let _ = writeln!(
        o,
        "  {} OK, {} with errors, {} with warnings",
        s.ok, s.with_errors, s.with_warnings
    );
    for sev in [Severity::Error, Severity::Warning, Severity::Info] {
        let list: Vec<&Group> = s.groups.iter().filter(|g| g.severity == sev).collect();
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(o, "\n{}", p.sev(sev, heading(sev)));
        for g in list {
            let what = g
                .subject
                .as_deref()
                .map(|x| format!(" {}", term(x)))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "  {} x [{}]{what}: {}",
                g.count,
                p.sev(sev, g.id.as_str()),
                term(&g.message)
            );
            let examples = term(&g.examples.join(", ")).into_owned();
            let _ = writeln!(o, "      {}", p.dim(&format!("e.g. {examples}")));
            if let Some(fix) = &g.fix {
                let _ = writeln!(o, "      fix: {}", term(fix));
            }
        }
    }
}

fn render_process(pr: &super::pid::PidOutcome, o: &mut String) {
    let p = &pr.process;
    let _ = writeln!(
        o,
        "\nProcess {} ({}), sampled over {} ms:",
        p.pid,
        term(&p.comm),
        pr.sample_ms
    );
    if let Some(c) = &pr.container {
        let name = c
            .name
            .as_deref()
            .map(|n| format!(" {}", term(n)))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  container: {:?} {}{name}",
            c.runtime,
            term(&c.short_id)
        );
    }
    let version = p.emulator.version.as_deref().unwrap_or("version unknown");
    let _ = writeln!(
        o,
        "  emulator: {} ({})",
        term(&p.emulator.path),
        term(version)
    );
    let _ = writeln!(
        o,
        "  guest: {} {}",
        term(&p.guest.platform),
        term(&p.guest.argv.join(" "))
    );
    let _ = writeln!(o, "  verdict: {}", term(&pr.verdict));
    for t in p.threads.iter().take(16) {
        let _ = writeln!(o, "    {}", crate::procs::thread_line(t, false));
    }
    if !pr.next_steps.is_empty() {
        let _ = writeln!(o, "  next steps:");
        for s in &pr.next_steps {
            let _ = writeln!(o, "    - {}", term(s));
        }
    }
}
