//! Text output of `binfmtd ps`: grouped by container, one line per process and per thread,
//! readable at 80 columns, with every string from /proc escaped.

use crate::procs::container::Container;
use crate::procs::{duration, Process, Report};
use crate::text::term;
use std::fmt::Write;

const WIDTH: usize = 80;

/// `s` cut to `n` characters, with `…` when cut.
fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn heading(c: Option<&Container>) -> String {
    match c {
        None => "Not in a container".into(),
        Some(c) => {
            let name = c
                .name
                .as_deref()
                .map(|n| format!(" ({})", term(n)))
                .unwrap_or_default();
            let runtime = format!("{:?}", c.runtime).to_lowercase();
            format!("Container {runtime} {}{name}", term(&c.short_id))
        }
    }
}

fn process_lines(p: &Process, o: &mut String) {
    let version = p
        .emulator
        .version
        .as_deref()
        .and_then(|v| {
            v.split_whitespace()
                .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        })
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    let head = format!(
        "{:>7}  {:<13} {}{version}  ",
        p.pid, p.guest.platform, p.emulator.handler
    );
    // The program's file name and its arguments; the full path is in --json.
    let mut words = p.guest.argv.clone();
    if let Some(first) = words.first_mut() {
        *first = first.rsplit('/').next().unwrap_or(first).to_string();
    }
    let argv = term(&words.join(" ")).into_owned();
    let room = WIDTH.saturating_sub(head.chars().count()).max(10);
    let _ = writeln!(o, "{head}{}", fit(&argv, room));
    let _ = writeln!(o, "         {}", fit(&term(&p.summary), WIDTH - 9));
    if p.threads.len() > 1 {
        for t in p.threads.iter().take(8) {
            let _ = writeln!(
                o,
                "           {}",
                fit(&crate::procs::thread_line(t, true), WIDTH - 11)
            );
        }
        if p.threads.len() > 8 {
            let _ = writeln!(
                o,
                "           ... {} more threads (see --json)",
                p.threads.len() - 8
            );
        }
    }
}

/// The human rendering of a scan.
pub fn ps(r: &Report) -> String {
    let mut o = String::new();
    let n = r.processes().count();
    if n == 0 {
        let _ = writeln!(
            o,
            "No process runs under an emulator ({} processes looked at).",
            r.scanned
        );
    }
    for g in &r.groups {
        let _ = writeln!(o, "{}", heading(g.container.as_ref()));
        let _ = writeln!(o, "{:>7}  {:<13} EMULATOR  GUEST ARGV", "PID", "PLATFORM");
        for p in &g.processes {
            process_lines(p, &mut o);
        }
        let _ = writeln!(o);
    }
    if n > 0 {
        let window = match r.window_ms {
            0 => "one pass, no CPU sampling".to_string(),
            ms => format!("sampled over {}", duration(ms, false)),
        };
        let _ = writeln!(o, "{n} emulated of {} processes ({window}).", r.scanned);
    }
    if let Some(h) = &r.unreadable.hint {
        let _ = writeln!(o, "{}", term(h));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_and_escapes() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        let empty = Report {
            schema: crate::procs::SCHEMA,
            window_ms: 0,
            scanned: 3,
            groups: vec![],
            unreadable: crate::procs::Unreadable {
                count: 2,
                hint: Some("2 processes could not be read; run as root to see them".into()),
            },
        };
        let text = ps(&empty);
        assert!(
            text.starts_with("No process runs under an emulator (3 processes"),
            "{text}"
        );
        assert!(text.contains("run as root"));
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
    }
}
