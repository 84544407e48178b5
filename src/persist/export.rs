//! `binfmtd export`: registrations as systemd binfmt.d or Debian binfmt-support files (pure).

use super::{binfmt_d, binfmt_support};
use crate::kernel::codec;
use crate::model::Rule;
use serde::Serialize;

/// The file formats `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Format {
    /// systemd's binfmt.d(5): one register line per entry, in one file.
    #[serde(rename = "binfmt.d")]
    BinfmtD,
    /// Debian's binfmt-support: one import file per entry (`/usr/share/binfmts/NAME`).
    #[serde(rename = "binfmt-support")]
    BinfmtSupport,
}

/// The name of the single binfmt.d file `export --dir` writes.
pub const BINFMT_D_FILE: &str = "binfmtd-export.conf";
/// The `package` binfmt-support records for exported files.
pub const PACKAGE: &str = "binfmtd";

/// One registration to export.
#[derive(Debug, Clone)]
pub struct Source {
    pub rule: Rule,
    pub platform: Option<String>,
    /// False for a kernel entry that is disabled: neither format can say so.
    pub enabled: bool,
}

/// One exported entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Exported {
    pub name: String,
    pub platform: Option<String>,
    /// The register line the entry stands for.
    pub line: Option<String>,
    /// The file this entry goes to (binfmt-support: its own; binfmt.d: the shared one).
    pub file: String,
    /// binfmt-support: this entry's import file. binfmt.d: its line.
    pub text: Option<String>,
    /// Why the entry is not in the output (a flag set the format cannot express).
    pub error: Option<String>,
    /// What the format loses that is not a flag (a disabled entry comes back enabled).
    pub note: Option<String>,
}

/// Everything `export` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Export {
    pub schema: &'static str,
    pub format: Format,
    /// `kernel` (current registrations) or `plan` (what `install LIST` would register).
    pub source: &'static str,
    pub entries: Vec<Exported>,
    /// Every file, as (name, content); binfmt.d has one.
    #[serde(skip)]
    pub files: Vec<(String, String)>,
    /// True when every entry was exported.
    pub ok: bool,
}

impl Export {
    /// The text for stdout: the binfmt.d file, or every import file under a `# NAME` line
    /// (update-binfmts skips `#` lines).
    pub fn text(&self) -> String {
        match self.format {
            Format::BinfmtD => self.files.first().map(|f| f.1.clone()).unwrap_or_default(),
            Format::BinfmtSupport => self
                .files
                .iter()
                .map(|(n, t)| format!("# {IMPORT}/{n}\n{t}", IMPORT = binfmt_support::IMPORT_DIR))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

fn one(format: Format, s: &Source) -> Exported {
    let mut e = Exported {
        name: s.rule.name.clone(),
        platform: s.platform.clone(),
        line: None,
        file: match format {
            Format::BinfmtD => BINFMT_D_FILE.to_string(),
            Format::BinfmtSupport => s.rule.name.clone(),
        },
        text: None,
        error: None,
        note: (!s.enabled).then(|| {
            "disabled in the kernel; this format has no way to say so, so it is registered enabled when applied".to_string()
        }),
    };
    match codec::encode(&s.rule) {
        Ok(line) => e.line = Some(line),
        Err(err) => {
            e.error = Some(err.to_string());
            return e;
        }
    }
    match format {
        Format::BinfmtD => e.text = e.line.clone(),
        Format::BinfmtSupport => match binfmt_support::import_file(&s.rule, PACKAGE) {
            Ok(t) => e.text = Some(t),
            Err(err) => e.error = Some(err.to_string()),
        },
    }
    e
}

/// Exports every source in order; entries a format cannot express are reported, not dropped
/// silently (pure). `header` opens the binfmt.d file as comment lines.
pub fn export(format: Format, source: &'static str, items: &[Source], header: &str) -> Export {
    let entries: Vec<Exported> = items.iter().map(|s| one(format, s)).collect();
    let good: Vec<&Source> = items
        .iter()
        .zip(&entries)
        .filter(|(_, e)| e.error.is_none())
        .map(|(s, _)| s)
        .collect();
    let files = match format {
        Format::BinfmtD => {
            let rules: Vec<Rule> = good.iter().map(|s| s.rule.clone()).collect();
            // Every rule in `good` encoded once already, so rendering cannot fail here.
            let text = binfmt_d::render(&rules, header).unwrap_or_default();
            vec![(BINFMT_D_FILE.to_string(), text)]
        }
        Format::BinfmtSupport => entries
            .iter()
            .filter_map(|e| Some((e.file.clone(), e.text.clone()?)))
            .collect(),
    };
    Export {
        schema: "binfmtd.export/v1",
        format,
        source,
        ok: entries.iter().all(|e| e.error.is_none()),
        entries,
        files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flags, Matcher};

    fn src(name: &str, flags: &str, enabled: bool) -> Source {
        Source {
            rule: Rule {
                name: name.into(),
                matcher: Matcher::Magic {
                    offset: 0,
                    magic: vec![0x7f, b'E', b'L', b'F'],
                    mask: None,
                },
                interpreter: "/usr/bin/q".into(),
                flags: Flags::parse(flags).unwrap(),
            },
            platform: Some("linux/arm64".into()),
            enabled,
        }
    }

    #[test]
    fn binfmt_d_keeps_every_flag() {
        let x = export(
            Format::BinfmtD,
            "kernel",
            &[src("a", "POF", true), src("b", "F", false)],
            "h1\nh2",
        );
        assert!(x.ok);
        assert_eq!(
            x.text(),
            "# h1\n# h2\n:a:M::\\x7f\\x45\\x4c\\x46::/usr/bin/q:POF\n:b:M::\\x7f\\x45\\x4c\\x46::/usr/bin/q:F\n"
        );
        assert!(x.entries[0].note.is_none());
        assert!(x.entries[1].note.as_deref().unwrap().contains("disabled"));
    }

    #[test]
    fn binfmt_support_reports_what_it_cannot_say() {
        let x = export(
            Format::BinfmtSupport,
            "plan",
            &[src("fex", "POF", true), src("qemu", "F", true)],
            "",
        );
        assert!(!x.ok);
        assert!(x.entries[0]
            .error
            .as_deref()
            .unwrap()
            .contains("O without C"));
        assert!(x.entries[0].text.is_none());
        assert_eq!(x.files.len(), 1);
        assert_eq!(x.files[0].0, "qemu");
        assert!(x
            .text()
            .starts_with("# /usr/share/binfmts/qemu\npackage binfmtd\n"));
    }

    #[test]
    fn an_invalid_rule_is_an_error_in_both_formats() {
        let mut s = src("bad/name", "F", true);
        s.rule.name = "bad/name".into();
        for f in [Format::BinfmtD, Format::BinfmtSupport] {
            let x = export(f, "kernel", std::slice::from_ref(&s), "");
            assert!(!x.ok);
            assert!(x.entries[0].error.is_some());
        }
    }
}
