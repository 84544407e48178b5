//! Terminal-safe text: control characters from files and the kernel are shown as escapes.
//!
//! File names, ELF strings (PT_INTERP, DT_NEEDED, Go build info), a program's stderr and
//! binfmt_misc entries come from whoever wrote them; printed raw, an escape sequence or a
//! newline in them would rewrite the terminal or forge output lines. Every such string in
//! human-readable output goes through [`term`]; JSON needs nothing (serde escapes).

use std::borrow::Cow;
use std::fmt::Write;

/// True for characters that must not reach a terminal raw: C0 and C1 controls, DEL, and the
/// Unicode bidirectional overrides and isolates (which reorder what follows them).
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character written as an escape: `\n`, `\r`, `\t`, `\x1b`,
/// `\u{9b}`. Borrows when there is nothing to escape.
pub fn term(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`term`] of anything displayable, e.g. a `Path::display()`.
pub fn term_of(x: impl std::fmt::Display) -> String {
    term(&x.to_string()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_table() {
        let table = [
            ("/usr/bin/plain", "/usr/bin/plain"),
            ("", ""),
            ("caf\u{e9} \u{1f600}", "caf\u{e9} \u{1f600}"),
            ("a\nb", "a\\nb"),
            ("\r\t", "\\r\\t"),
            ("\x1b[31mred", "\\x1b[31mred"),
            ("nul\0del\x7f", "nul\\x00del\\x7f"),
            ("csi\u{9b}2J", "csi\\u{9b}2J"),
            ("rlo\u{202e}txt", "rlo\\u{202e}txt"),
            ("isolate\u{2066}x\u{2069}", "isolate\\u{2066}x\\u{2069}"),
        ];
        for (input, want) in table {
            assert_eq!(term(input), want, "{input:?}");
            assert!(!term(input).chars().any(needs_escape), "{input:?}");
        }
        assert!(matches!(term("plain"), Cow::Borrowed(_)));
        assert_eq!(term_of(std::path::Path::new("x\ny").display()), "x\\ny");
    }
}
