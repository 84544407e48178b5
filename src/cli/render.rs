//! Human-readable rendering of reports (JSON rendering is serde's).

use crate::engine::{EntriesReport, HandlerResult, InstallReport};
use crate::host::HostReport;
use crate::ops::{PlatformsReport, StatusReport};
use crate::plan::Action;
use crate::text::{term, term_of};
use std::fmt::Write;

/// The string with control characters escaped, or `-` when absent.
fn or_dash(s: Option<&str>) -> std::borrow::Cow<'_, str> {
    s.map_or(std::borrow::Cow::Borrowed("-"), term)
}

pub fn host(r: &HostReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "machine:        {} (OCI {}, qemu {})",
        r.machine.uname,
        or_dash(r.machine.oci.as_deref()),
        or_dash(r.machine.qemu.as_deref())
    );
    let _ = writeln!(
        o,
        "native ISAs:    {} ({})",
        r.native.join(", "),
        match r.native_method {
            crate::host::detect::NativeMethod::Probe =>
                "each probed in an empty private binfmt_misc instance",
            crate::host::detect::NativeMethod::ProbeAndGuess =>
                "probed where no entry takes the ISA, else guessed from QEMU's family table",
            crate::host::detect::NativeMethod::FamilyGuess => "guessed from QEMU's family table",
        }
    );
    let _ = writeln!(o, "native platforms: {}", r.native_platforms.join(", "));
    if let Some(e) = &r.probe_error {
        let _ = writeln!(o, "probe note:     {}", term(e));
    }
    let _ = writeln!(
        o,
        "kernel:         {}{}",
        r.kernel.release,
        if r.kernel.private_instances {
            " (private binfmt_misc instances supported)"
        } else {
            " (no private binfmt_misc instances: needs 6.7+)"
        }
    );
    let _ = writeln!(o, "page size:      {}", r.page_size);
    if let Some(l) = r.x86_64_level {
        let _ = writeln!(o, "x86-64 level:   v{l}");
    }
    let _ = writeln!(
        o,
        "binfmt_misc:    {}",
        if !r.binfmt_misc.supported {
            "not supported by this kernel".to_string()
        } else if !r.binfmt_misc.mounted {
            "supported, not mounted".to_string()
        } else {
            format!("mounted, {}", or_dash(r.binfmt_misc.status))
        }
    );
    let _ = writeln!(
        o,
        "container:      {}",
        term(r.container.as_deref().unwrap_or("no"))
    );
    let _ = writeln!(
        o,
        "user namespace: {}",
        if r.nested_user_namespace {
            "nested (not the initial one)"
        } else {
            "initial"
        }
    );
    let ro = &r.rosetta;
    let _ = writeln!(
        o,
        "rosetta:        {}",
        if !ro.present {
            "not present".to_string()
        } else {
            format!(
                "{} at {}{}{}",
                if ro.healthy {
                    "healthy"
                } else {
                    "present but not working"
                },
                or_dash(ro.path.as_deref()),
                ro.version
                    .as_ref()
                    .map(|v| format!(", {}", term(v)))
                    .unwrap_or_default(),
                ro.note
                    .as_ref()
                    .map(|n| format!(" ({})", term(n)))
                    .unwrap_or_default()
            )
        }
    );
    o
}

/// What happened to a handler, escaped for the terminal.
fn action_text(h: &HandlerResult) -> String {
    term(&action_words(h)).into_owned()
}

fn action_words(h: &HandlerResult) -> String {
    match &h.plan.action {
        Action::Register => "registered".into(),
        Action::Replace { remove } => format!("replaced {}", remove.join(", ")),
        Action::Keep { owned: true } => "already installed".into(),
        Action::Keep { owned: false } => "identical entry from another tool, left as is".into(),
        Action::Enable => "enabled".into(),
        Action::SkipNative => "native: runs without emulation".into(),
        Action::SkipForeign { provider, wins } => format!(
            "provided by {provider} (not binfmtd's{}); --force replaces it",
            if *wins { ", wins" } else { ", shadowed" }
        ),
        Action::SkipPreferred { by } => format!("served by {by} instead"),
        Action::SkipUnavailable { reason } => format!("unavailable: {reason}"),
        Action::Fail { .. } => "failed".into(),
    }
}

pub fn install(r: &InstallReport) -> String {
    let mut o = String::new();
    if r.dry_run {
        let _ = writeln!(
            o,
            "# dry run: these lines would be written to {}/register",
            term(&r.binfmt_misc)
        );
        for h in &r.handlers {
            if let (Some(line), true) = (
                &h.plan.line,
                matches!(h.plan.action, Action::Register | Action::Replace { .. }),
            ) {
                if let Action::Replace { remove } = &h.plan.action {
                    for name in remove {
                        let (name, dir) = (term(name), term(&r.binfmt_misc));
                        let _ = writeln!(o, "# remove {name}: echo -1 > {dir}/{name}");
                    }
                }
                let _ = writeln!(o, "{}", term(line));
            }
        }
    }
    for h in &r.handlers {
        if r.dry_run
            && matches!(
                h.plan.action,
                Action::SkipNative | Action::SkipUnavailable { .. }
            )
        {
            continue;
        }
        let mark = match h.result.as_str() {
            "ok" => "ok  ",
            "failed" => "FAIL",
            _ => "skip",
        };
        let mut line = format!(
            "{mark} {:<18} {:<16} {}",
            term(&h.plan.handler),
            term(&h.plan.platform),
            action_text(h)
        );
        if let Some(i) = &h.plan.interpreter {
            let _ = write!(
                line,
                " [{}{}]",
                term_of(i.path.display()),
                i.version
                    .as_ref()
                    .map(|v| format!(", {}", term(v)))
                    .unwrap_or_default()
            );
        }
        if let Some(v) = &h.verify {
            if let Some(p) = &v.probe {
                let _ = write!(
                    line,
                    "; {}{}",
                    term(&p.describe()),
                    if v.chrooted { " (chrooted)" } else { "" }
                );
            }
        }
        if let Some(e) = &h.error {
            let _ = write!(line, "\n     error: {}", term_of(e));
        }
        for w in &h.plan.warnings {
            let _ = write!(line, "\n     warning: {}", term(w));
        }
        let _ = writeln!(o, "{line}");
    }
    let skipped_unavailable = r
        .handlers
        .iter()
        .filter(|h| matches!(h.plan.action, Action::SkipUnavailable { .. }))
        .count();
    for w in &r.warnings {
        let _ = writeln!(o, "warning: {}", term(w));
    }
    let ok = r
        .handlers
        .iter()
        .filter(|h| h.result.as_str() == "ok")
        .count();
    let failed = r
        .handlers
        .iter()
        .filter(|h| h.result.as_str() == "failed")
        .count();
    let _ = writeln!(
        o,
        "{ok} handlers ready, {failed} failed, {skipped_unavailable} unavailable{}",
        r.probe_seconds
            .map(|s| format!(", probes took {:.0} ms", s * 1000.0))
            .unwrap_or_default()
    );
    o
}

pub fn entries(r: &EntriesReport) -> String {
    let mut o = String::new();
    for e in &r.entries {
        let mark = match e.result.as_str() {
            "ok" => "ok  ",
            "failed" => "FAIL",
            _ => "skip",
        };
        let what = match &e.decision.plan {
            crate::plan::EntryPlan::Remove => "removed",
            crate::plan::EntryPlan::Enable => "enabled",
            crate::plan::EntryPlan::Disable => "disabled",
            crate::plan::EntryPlan::Unchanged => "unchanged",
            crate::plan::EntryPlan::SkipForeign => "not binfmtd's",
            crate::plan::EntryPlan::Absent => "not registered",
        };
        let _ = writeln!(
            o,
            "{mark} {:<20} {}{}",
            term(&e.decision.name),
            if r.dry_run {
                format!("would be {what}")
            } else {
                what.to_string()
            },
            e.error
                .as_ref()
                .map(|x| format!("\n     error: {}", term_of(x)))
                .unwrap_or_default()
        );
    }
    if r.entries.is_empty() {
        let _ = writeln!(o, "nothing to {}", r.operation);
    }
    for w in &r.warnings {
        let _ = writeln!(o, "warning: {}", term(w));
    }
    o
}

pub fn remote(r: &crate::cli::remote::RemoteReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "via the binfmtd daemon (org.binfmtd1):");
    for i in &r.items {
        let mark = match i.outcome.as_str() {
            "failed" => "FAIL",
            "skipped" | "absent" | "unchanged" => "skip",
            _ => "ok  ",
        };
        let _ = writeln!(
            o,
            "{mark} {:<18} {:<16} {}: {}",
            term(&i.handler),
            term(&i.platform),
            term(&i.outcome),
            term(&i.message)
        );
    }
    o
}

/// Left-aligned columns as wide as their widest cell (header included), two spaces apart;
/// the last column is not padded. Cells must already be escaped.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut o = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(o, "{}", line.trim_end());
    }
    o
}

/// One `status` table row, escaped.
fn status_row(e: &crate::ops::status::EntryStatus) -> Vec<String> {
    let wins = if e.wins {
        "yes".to_string()
    } else if let Some(by) = &e.shadowed_by {
        format!("no ({})", term(by))
    } else {
        "-".to_string()
    };
    vec![
        term(&e.entry.name).into_owned(),
        if e.entry.enabled {
            "enabled"
        } else {
            "disabled"
        }
        .to_string(),
        or_dash(e.platform.as_deref()).into_owned(),
        e.entry.flags.to_string(),
        wins,
        term_of(&e.owner),
        term_of(e.entry.interpreter.display()),
    ]
}

pub fn status(r: &StatusReport) -> String {
    let mut o = String::new();
    if let Some(route) = &r.route {
        let _ = writeln!(
            o,
            "changes go: {} ({}{})",
            term_of(route.via),
            term_of(&route.reason),
            route
                .daemon_version
                .as_ref()
                .map(|v| format!(", daemon {}", term(v)))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        o,
        "binfmt_misc at {}: {}",
        term(&r.binfmt_misc),
        if !r.mounted {
            "not mounted"
        } else if r.enabled {
            "enabled"
        } else {
            "DISABLED"
        }
    );
    let rows: Vec<Vec<String>> = r.entries.iter().map(status_row).collect();
    if !rows.is_empty() {
        o.push_str(&table(
            &[
                "ENTRY",
                "STATE",
                "PLATFORM",
                "FLAGS",
                "WINS",
                "OWNER",
                "INTERPRETER",
            ],
            &rows,
        ));
    }
    for (n, why) in &r.unreadable {
        let _ = writeln!(o, "unreadable entry {}: {}", term(n), term(why));
    }
    for w in &r.warnings {
        let _ = writeln!(o, "warning: {}", term(w));
    }
    o
}

pub fn platforms(r: &PlatformsReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", term(&r.platforms.join(", ")));
    for b in &r.broken {
        let _ = writeln!(
            o,
            "broken: {} via {} ({}): {}",
            term(&b.platform),
            or_dash(b.handler.as_deref()),
            or_dash(b.interpreter.as_deref()),
            term(&b.probe.as_ref().map(|p| p.describe()).unwrap_or_default())
        );
    }
    o
}

pub fn known(r: &crate::ops::status::KnownReport) -> String {
    let rows: Vec<Vec<String>> = r
        .handlers
        .iter()
        .map(|h| {
            let t = serde_json::to_value(h.translator)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            vec![
                term(&h.handler).into_owned(),
                t,
                term(&h.arch).into_owned(),
                term(&h.platforms.join(",")).into_owned(),
                term(&h.aliases.join(",")).into_owned(),
            ]
        })
        .collect();
    let mut o = table(&["HANDLER", "TYPE", "ARCH", "PLATFORMS", "ALIASES"], &rows);
    for (arch, why) in crate::catalog::NO_BINFMT_MAGIC {
        let _ = writeln!(o, "not registrable: qemu-{arch}: {why}");
    }
    o
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{Entry, Flags, Matcher};
    use crate::ops::status::EntryStatus;

    fn row(name: &str, platform: &str, owner: &str, interp: &str) -> EntryStatus {
        EntryStatus {
            entry: Entry {
                name: name.into(),
                enabled: true,
                interpreter: interp.into(),
                flags: Flags::parse("F").unwrap(),
                matcher: Matcher::Magic {
                    offset: 0,
                    magic: vec![0x7f],
                    mask: None,
                },
            },
            owner: owner.into(),
            owned: owner == "binfmtd",
            arch: None,
            platform: Some(platform.into()),
            wins: true,
            shadowed_by: None,
        }
    }

    fn report(entries: Vec<EntryStatus>) -> StatusReport {
        StatusReport {
            schema: "binfmtd.status/v1",
            route: None,
            binfmt_misc: "/proc/sys/fs/binfmt_misc".into(),
            mounted: true,
            enabled: true,
            entries,
            unreadable: vec![],
            missing: vec![],
            warnings: vec![],
        }
    }

    /// Where each header word starts; every data line must have a column boundary there.
    fn column_starts(header: &str) -> Vec<usize> {
        header
            .char_indices()
            .filter(|(i, c)| *c != ' ' && (*i == 0 || header[..*i].ends_with(' ')))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn status_columns_fit_their_content() {
        let table = [
            vec![row(
                "qemu-aarch64",
                "linux/arm64",
                "binfmtd",
                "/usr/bin/qemu-aarch64-static",
            )],
            vec![
                row(
                    "qemu-sparc32plus",
                    "linux/sparc32plus",
                    "binfmtd",
                    "/usr/bin/qemu-sparc32plus-static",
                ),
                row(
                    "qemu-microblazeel",
                    "linux/microblazeel",
                    "binfmtd",
                    "/usr/bin/qemu-microblazeel-static",
                ),
                row(
                    "python3.11",
                    "-",
                    "binfmt.d /usr/lib/binfmt.d/python3.11.conf",
                    "/usr/bin/python3.11",
                ),
            ],
            vec![row(
                "a-very-long-entry-name-from-someone-else-x",
                "linux/riscv64",
                "unknown",
                "/x",
            )],
            vec![row(
                "evil\x1b[2J\nname",
                "linux/arm64",
                "unknown",
                "/tmp/\x1b]0;x\x07",
            )],
        ];
        for entries in table {
            let text = status(&report(entries.clone()));
            let lines: Vec<&str> = text.lines().skip(1).collect();
            assert_eq!(lines.len(), entries.len() + 1, "{text}");
            let starts = column_starts(lines[0]);
            assert_eq!(starts.len(), 7, "{text}");
            for line in &lines[1..] {
                for &s in &starts[1..] {
                    assert!(
                        line.len() > s
                            && line.as_bytes()[s - 1] == b' '
                            && line.as_bytes()[s] != b' ',
                        "column at {s} lost in {line:?}:\n{text}"
                    );
                }
            }
            assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text}");
            assert_eq!(text.lines().count(), entries.len() + 2, "{text}");
        }
    }

    #[test]
    fn table_pads_all_but_the_last_column() {
        let rows = vec![
            vec!["a".to_string(), "bbbb".to_string(), "c".to_string()],
            vec!["aaaaa".to_string(), "b".to_string(), "".to_string()],
        ];
        assert_eq!(
            table(&["X", "Y", "LAST"], &rows),
            "X      Y     LAST\na      bbbb  c\naaaaa  b\n"
        );
    }
}
