//! Pure classification of a file's first bytes: ELF, script, Mach-O, PE, text, empty, unknown.

use serde::Serialize;

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FileKind {
    Elf,
    /// `#!` line: the interpreter and its optional single argument, as the kernel splits it.
    Script {
        interpreter: String,
        arg: Option<String>,
    },
    MachO {
        detail: String,
    },
    Pe,
    Text,
    Empty,
    Unknown,
}

/// The kernel reads at most this much of a `#!` line (BINPRM_BUF_SIZE).
const SHEBANG_MAX: usize = 256;

/// Classifies a file from its header (the first 256 bytes or more).
pub fn classify(header: &[u8]) -> FileKind {
    if header.is_empty() {
        return FileKind::Empty;
    }
    if header.starts_with(b"\x7fELF") {
        return FileKind::Elf;
    }
    if header.starts_with(b"#!") {
        return parse_shebang(header).unwrap_or(FileKind::Text);
    }
    if let Some(detail) = macho(header) {
        return FileKind::MachO { detail };
    }
    if header.starts_with(b"MZ") {
        return FileKind::Pe;
    }
    let window = &header[..header.len().min(512)];
    let printable = window
        .iter()
        .all(|b| matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x20..=0x7e) || *b >= 0x80);
    // Valid UTF-8, allowing a character cut off by the end of the window.
    let utf8 = match std::str::from_utf8(window) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    if printable && utf8 {
        FileKind::Text
    } else {
        FileKind::Unknown
    }
}

fn macho(h: &[u8]) -> Option<String> {
    let word = u32::from_be_bytes(h.get(..4)?.try_into().ok()?);
    let cputype = |le: bool| -> u32 {
        h.get(4..8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| {
                if le {
                    u32::from_le_bytes(b)
                } else {
                    u32::from_be_bytes(b)
                }
            })
            .unwrap_or(0)
    };
    let cpu_name = |c: u32| match c {
        0x0100_0007 => "x86_64",
        7 => "i386",
        0x0100_000c => "arm64",
        12 => "arm",
        0x0100_0012 => "ppc64",
        18 => "ppc",
        _ => "unknown CPU",
    };
    match word {
        0xcffa_edfe => Some(format!("64-bit Mach-O for {}", cpu_name(cputype(true)))),
        0xcefa_edfe => Some(format!("32-bit Mach-O for {}", cpu_name(cputype(true)))),
        0xfeed_facf => Some(format!("64-bit Mach-O for {}", cpu_name(cputype(false)))),
        0xfeed_face => Some(format!("32-bit Mach-O for {}", cpu_name(cputype(false)))),
        // 0xcafebabe is shared with Java class files; a fat header has a small arch count,
        // a class file has its (large) major version there.
        0xcafe_babe => {
            let n = u32::from_be_bytes(h.get(4..8)?.try_into().ok()?);
            (1..=20)
                .contains(&n)
                .then(|| format!("universal (fat) Mach-O with {n} architectures"))
        }
        _ => None,
    }
}

fn parse_shebang(h: &[u8]) -> Option<FileKind> {
    let line = &h[2..h.len().min(SHEBANG_MAX)];
    let end = line.iter().position(|b| *b == b'\n').unwrap_or(line.len());
    let line = std::str::from_utf8(&line[..end]).ok()?;
    let line = line.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
    if line.is_empty() {
        return None;
    }
    // The kernel splits at the first blank: everything after it is one argument.
    let (interp, arg) = match line.find([' ', '\t']) {
        Some(i) => (
            &line[..i],
            Some(line[i..].trim().to_string()).filter(|a| !a.is_empty()),
        ),
        None => (line, None),
    };
    Some(FileKind::Script {
        interpreter: interp.to_string(),
        arg,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn classifies_table() {
        let script = |i: &str, a: Option<&str>| FileKind::Script {
            interpreter: i.into(),
            arg: a.map(str::to_string),
        };
        let table: Vec<(&[u8], FileKind)> = vec![
            (b"", FileKind::Empty),
            (b"\x7fELF\x02\x01", FileKind::Elf),
            (b"#!/bin/sh\necho", script("/bin/sh", None)),
            (
                b"#! /usr/bin/env python3 -u\n",
                script("/usr/bin/env", Some("python3 -u")),
            ),
            (b"#!\n", FileKind::Text),
            (
                b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01",
                FileKind::MachO {
                    detail: "64-bit Mach-O for arm64".into(),
                },
            ),
            (
                b"\xfe\xed\xfa\xce\x00\x00\x00\x12",
                FileKind::MachO {
                    detail: "32-bit Mach-O for ppc".into(),
                },
            ),
            (
                b"\xca\xfe\xba\xbe\x00\x00\x00\x02",
                FileKind::MachO {
                    detail: "universal (fat) Mach-O with 2 architectures".into(),
                },
            ),
            (b"\xca\xfe\xba\xbe\x00\x00\x00\x41", FileKind::Unknown),
            (b"MZ\x90\x00", FileKind::Pe),
            (b"hello world\n", FileKind::Text),
            ("h\u{e9}llo\n".as_bytes(), FileKind::Text),
            (b"\x00\x01\x02\x03", FileKind::Unknown),
        ];
        for (bytes, want) in table {
            assert_eq!(classify(bytes), want, "{bytes:?}");
        }
    }
}
