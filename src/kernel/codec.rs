//! Pure encoder/validator for `register` lines and parser for binfmt_misc entry files.

use crate::model::{from_hex, Entry, Flags, Matcher, Rule};
use std::path::PathBuf;

/// Longest line the kernel accepts in one write to `register` (fs/binfmt_misc.c).
pub const MAX_REGISTER_LENGTH: usize = 1920;
/// The kernel only looks at the first 256 bytes of a file (`BINPRM_BUF_SIZE`).
pub const BINPRM_BUF_SIZE: usize = 256;

/// Why a rule cannot be written to `register`; each variant names the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("entry name {name:?} is not allowed: {why}; a name must be non-empty, not '.' or '..', not 'register' or 'status', at most 255 bytes, and contain no '/', no ':' (the register-line delimiter), no newline and no NUL byte")]
    BadName { name: String, why: &'static str },
    #[error("{field} of entry {name:?} contains {what}, which cannot be written to binfmt_misc (a register line cannot carry ':', its delimiter, a newline or a NUL byte); choose a value without it")]
    ForbiddenChar {
        name: String,
        field: &'static str,
        what: &'static str,
    },
    #[error("interpreter {0:?} is not an absolute path; binfmt_misc needs a full path such as /usr/bin/qemu-aarch64-static")]
    RelativeInterpreter(PathBuf),
    #[error("magic of entry {name:?} is {magic} bytes but its mask is {mask} bytes; they must be the same length")]
    MaskLength {
        name: String,
        magic: usize,
        mask: usize,
    },
    #[error("magic of entry {name:?} is empty; give at least one byte")]
    EmptyMagic { name: String },
    #[error("entry {name:?}: offset {offset} + magic length {len} exceeds the {limit} bytes the kernel reads")]
    BeyondHeader {
        name: String,
        offset: usize,
        len: usize,
        limit: usize,
    },
    #[error("register line for {name:?} is {len} bytes; the kernel accepts at most {limit}")]
    TooLong {
        name: String,
        len: usize,
        limit: usize,
    },
}

/// Checks an entry name against the kernel's rules.
pub fn validate_name(name: &str) -> Result<(), EncodeError> {
    let why = if name.is_empty() {
        "it is empty"
    } else if matches!(name, "." | ".." | "register" | "status") {
        "it is reserved by binfmt_misc"
    } else if name.len() > 255 {
        "it is longer than 255 bytes"
    } else if name.contains('/') {
        "it contains '/'"
    } else if name.contains(':') {
        "it contains ':', the register-line delimiter"
    } else if name.contains('\n') {
        "it contains a newline"
    } else if name.contains('\0') {
        "it contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(EncodeError::BadName {
        name: name.to_string(),
        why,
    })
}

fn check_text(name: &str, field: &'static str, value: &str) -> Result<(), EncodeError> {
    let what = if value.contains(':') {
        "the ':' delimiter"
    } else if value.contains('\n') {
        "a newline"
    } else if value.contains('\0') {
        "a NUL byte"
    } else {
        return Ok(());
    };
    Err(EncodeError::ForbiddenChar {
        name: name.to_string(),
        field,
        what,
    })
}

/// Writes bytes as `\xHH` escapes, the only form that survives every delimiter.
pub fn escape_bytes(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 4);
    for b in bytes {
        out.push_str("\\x");
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// Parses `\xHH` escapes mixed with literal characters, as the kernel does.
pub fn unescape_bytes(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = s.get(i + 2..i + 4)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Produces the exact line to write to `register`, or says which rule it breaks.
pub fn encode(rule: &Rule) -> Result<String, EncodeError> {
    validate_name(&rule.name)?;
    let interp = rule.interpreter.to_string_lossy();
    if !rule.interpreter.is_absolute() {
        return Err(EncodeError::RelativeInterpreter(rule.interpreter.clone()));
    }
    check_text(&rule.name, "interpreter", &interp)?;
    let body = match &rule.matcher {
        Matcher::Magic {
            offset,
            magic,
            mask,
        } => {
            if magic.is_empty() {
                return Err(EncodeError::EmptyMagic {
                    name: rule.name.clone(),
                });
            }
            if let Some(m) = mask {
                if m.len() != magic.len() {
                    return Err(EncodeError::MaskLength {
                        name: rule.name.clone(),
                        magic: magic.len(),
                        mask: m.len(),
                    });
                }
            }
            if offset + magic.len() > BINPRM_BUF_SIZE {
                return Err(EncodeError::BeyondHeader {
                    name: rule.name.clone(),
                    offset: *offset,
                    len: magic.len(),
                    limit: BINPRM_BUF_SIZE,
                });
            }
            let offset = if *offset == 0 {
                String::new()
            } else {
                offset.to_string()
            };
            format!(
                "M:{offset}:{}:{}",
                escape_bytes(magic),
                mask.as_deref().map(escape_bytes).unwrap_or_default()
            )
        }
        Matcher::Extension { extension } => {
            check_text(&rule.name, "extension", extension)?;
            if extension.contains('/') || extension.is_empty() {
                return Err(EncodeError::ForbiddenChar {
                    name: rule.name.clone(),
                    field: "extension",
                    what: "'/' or nothing",
                });
            }
            format!("E::{extension}:")
        }
    };
    let line = format!(":{}:{}:{}:{}", rule.name, body, interp, rule.flags);
    if line.len() > MAX_REGISTER_LENGTH {
        return Err(EncodeError::TooLong {
            name: rule.name.clone(),
            len: line.len(),
            limit: MAX_REGISTER_LENGTH,
        });
    }
    Ok(line)
}

/// Why a register line (from a binfmt.d file, say) could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse register line {line:?}: {reason}")]
pub struct DecodeError {
    pub line: String,
    pub reason: String,
}

/// Parses a register line such as the ones in `/usr/lib/binfmt.d/*.conf`.
pub fn decode(line: &str) -> Result<Rule, DecodeError> {
    let err = |reason: &str| DecodeError {
        line: line.to_string(),
        reason: reason.to_string(),
    };
    let line_t = line.trim_end_matches('\n');
    let mut chars = line_t.chars();
    let delim = chars.next().ok_or_else(|| err("empty line"))?;
    let fields: Vec<&str> = chars.as_str().split(delim).collect();
    if fields.len() < 6 {
        return Err(err(
            "expected :name:type:offset:magic:mask:interpreter:flags",
        ));
    }
    let name = fields[0].to_string();
    validate_name(&name).map_err(|e| err(&e.to_string()))?;
    let flags =
        Flags::parse(fields.get(6).copied().unwrap_or("")).map_err(|e| err(&e.to_string()))?;
    let interpreter = PathBuf::from(fields[5]);
    let matcher = match fields[1] {
        "M" => {
            let offset = if fields[2].is_empty() {
                0
            } else {
                fields[2]
                    .parse()
                    .map_err(|_| err("offset is not a number"))?
            };
            let magic = unescape_bytes(fields[3]).ok_or_else(|| err("bad \\x escape in magic"))?;
            let mask = if fields[4].is_empty() {
                None
            } else {
                Some(unescape_bytes(fields[4]).ok_or_else(|| err("bad \\x escape in mask"))?)
            };
            Matcher::Magic {
                offset,
                magic,
                mask,
            }
        }
        "E" => Matcher::Extension {
            extension: fields[3].to_string(),
        },
        _ => return Err(err("type must be M or E")),
    };
    let rule = Rule {
        name,
        matcher,
        interpreter,
        flags,
    };
    // What the kernel would refuse (a mask longer or shorter than the magic, an oversize
    // magic, a bad interpreter) is refused here too, so every decoded rule can be registered
    // and encodes again.
    encode(&rule).map_err(|e| err(&e.to_string()))?;
    Ok(rule)
}

/// Why an entry file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse binfmt_misc entry {name:?}: {reason}")]
pub struct ParseError {
    pub name: String,
    pub reason: String,
}

/// Parses the text of `/proc/sys/fs/binfmt_misc/NAME`.
pub fn parse_entry(name: &str, text: &str) -> Result<Entry, ParseError> {
    let err = |reason: String| ParseError {
        name: name.to_string(),
        reason,
    };
    let mut enabled = None;
    let mut interpreter = None;
    let mut flags = Flags::default();
    let mut offset = 0usize;
    let mut magic = None;
    let mut mask = None;
    let mut extension = None;
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "enabled" => enabled = Some(true),
            "disabled" => enabled = Some(false),
            "interpreter" => interpreter = Some(PathBuf::from(value)),
            "flags:" => flags = Flags::parse(value).map_err(|e| err(e.to_string()))?,
            "offset" => {
                offset = value
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("offset {value:?} is not a number")))?
            }
            "magic" => {
                magic = Some(from_hex(value).ok_or_else(|| err(format!("bad magic {value:?}")))?)
            }
            "mask" => {
                mask = Some(from_hex(value).ok_or_else(|| err(format!("bad mask {value:?}")))?)
            }
            "extension" => extension = Some(value.trim_start_matches('.').to_string()),
            "" => {}
            _ => {}
        }
    }
    let enabled = enabled.ok_or_else(|| err("no enabled/disabled line".into()))?;
    let interpreter = interpreter.ok_or_else(|| err("no interpreter line".into()))?;
    let matcher = match (magic, extension) {
        (Some(magic), _) => Matcher::Magic {
            offset,
            magic,
            mask,
        },
        (None, Some(extension)) => Matcher::Extension { extension },
        (None, None) => return Err(err("neither magic nor extension line".into())),
    };
    Ok(Entry {
        name: name.to_string(),
        enabled,
        interpreter,
        flags,
        matcher,
    })
}

/// The entry the kernel would hand a file to: entries are given newest first, the first
/// enabled match wins, and nothing runs while the global status is disabled.
pub fn winner<'a>(
    entries_newest_first: &'a [Entry],
    global_enabled: bool,
    header: &[u8],
    file_name: Option<&str>,
) -> Option<&'a Entry> {
    if !global_enabled {
        return None;
    }
    let header = &header[..header.len().min(BINPRM_BUF_SIZE)];
    entries_newest_first
        .iter()
        .find(|e| e.enabled && e.matcher.matches(header, file_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AARCH64: &str = r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:OCF";

    fn rule(name: &str, interp: &str) -> Rule {
        Rule {
            name: name.into(),
            matcher: Matcher::Magic {
                offset: 0,
                magic: vec![0x7f, b'E'],
                mask: None,
            },
            interpreter: interp.into(),
            flags: Flags::default(),
        }
    }

    #[test]
    fn encode_rejects_bad_input() {
        let table: Vec<(Rule, &str)> = vec![
            (rule("", "/x"), "not allowed"),
            (rule(".", "/x"), "not allowed"),
            (rule("..", "/x"), "not allowed"),
            (rule("a/b", "/x"), "contains '/'"),
            (
                rule("a:b", "/x"),
                "contains ':', the register-line delimiter",
            ),
            (rule("a\nb", "/x"), "contains a newline"),
            (rule("a\0b", "/x"), "contains a NUL byte"),
            (rule("register", "/x"), "not allowed"),
            (rule("status", "/x"), "not allowed"),
            (rule(&"n".repeat(256), "/x"), "not allowed"),
            (rule("ok", "relative/qemu"), "not an absolute path"),
            (rule("ok", "/usr/bin/a:b"), "contains the ':' delimiter"),
            (rule("ok", "/usr/bin/a\nb"), "contains a newline"),
            (rule("ok", "/usr/bin/a\0b"), "contains a NUL byte"),
            (
                rule("ok", &format!("/{}", "x".repeat(2000))),
                "at most 1920",
            ),
            (
                Rule {
                    matcher: Matcher::Magic {
                        offset: 0,
                        magic: vec![1, 2],
                        mask: Some(vec![1]),
                    },
                    ..rule("ok", "/x")
                },
                "same length",
            ),
            (
                Rule {
                    matcher: Matcher::Magic {
                        offset: 250,
                        magic: vec![1; 10],
                        mask: None,
                    },
                    ..rule("ok", "/x")
                },
                "exceeds",
            ),
            (
                Rule {
                    matcher: Matcher::Magic {
                        offset: 0,
                        magic: vec![],
                        mask: None,
                    },
                    ..rule("ok", "/x")
                },
                "empty",
            ),
        ];
        for (r, want) in table {
            let e = encode(&r).expect_err(&r.name);
            assert!(e.to_string().contains(want), "{} -> {e}", r.name);
            // Every refusal spells out the characters a register line cannot carry.
            if matches!(
                e,
                EncodeError::BadName { .. } | EncodeError::ForbiddenChar { .. }
            ) {
                for named in ["':'", "newline", "NUL"] {
                    assert!(e.to_string().contains(named), "{} -> {e}", r.name);
                }
            }
        }
    }

    #[test]
    fn encode_matches_debian_form() {
        let r = decode(AARCH64).unwrap();
        assert_eq!(encode(&r).unwrap(), AARCH64);
        let e = decode(":py:E::pyc::/usr/bin/python3:").unwrap();
        assert_eq!(encode(&e).unwrap(), ":py:E::pyc::/usr/bin/python3:");
        let off = decode(r":o:M:4:\x01::/bin/x:F").unwrap();
        assert_eq!(encode(&off).unwrap(), r":o:M:4:\x01::/bin/x:F");
    }

    #[test]
    fn parse_entry_variants() {
        let m = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OCF\noffset 0\nmagic 7f454c46\nmask ffffffff\n";
        let e = parse_entry("q", m).unwrap();
        assert!(e.enabled && e.flags.credentials && e.flags.fix_binary);
        let nomask = "disabled\ninterpreter /x\nflags: \noffset 3\nmagic 0102\n";
        let e = parse_entry("n", nomask).unwrap();
        assert!(!e.enabled);
        assert_eq!(
            e.matcher,
            Matcher::Magic {
                offset: 3,
                magic: vec![1, 2],
                mask: None
            }
        );
        let ext = "enabled\ninterpreter /usr/bin/python3.11\nflags: \nextension .pyc\n";
        assert_eq!(
            parse_entry("p", ext).unwrap().matcher,
            Matcher::Extension {
                extension: "pyc".into()
            }
        );
        assert!(parse_entry("x", "garbage").is_err());
        assert!(parse_entry("x", "enabled\ninterpreter /x\nflags: Z\n").is_err());
    }

    #[test]
    fn winner_is_newest_enabled_match() {
        let mk = |name: &str, enabled: bool| Entry {
            name: name.into(),
            enabled,
            interpreter: "/x".into(),
            flags: Flags::default(),
            matcher: Matcher::Magic {
                offset: 0,
                magic: vec![0x7f],
                mask: None,
            },
        };
        let entries = vec![mk("newest", false), mk("middle", true), mk("oldest", true)];
        assert_eq!(
            winner(&entries, true, &[0x7f], None).map(|e| e.name.as_str()),
            Some("middle")
        );
        assert!(winner(&entries, false, &[0x7f], None).is_none());
        assert!(winner(&entries, true, &[0x00], None).is_none());
    }

    fn arb_rule() -> impl Strategy<Value = Rule> {
        (
            "[a-zA-Z0-9_.-]{3,40}",
            0usize..64,
            proptest::collection::vec(any::<u8>(), 1..64),
            any::<bool>(),
            "/[a-z0-9/_.-]{1,100}",
            "[POCF]{0,4}",
        )
            .prop_map(|(name, offset, magic, with_mask, interp, flags)| {
                let mask = with_mask.then(|| magic.iter().map(|b| b ^ 0x5a).collect());
                Rule {
                    name,
                    matcher: Matcher::Magic {
                        offset,
                        magic,
                        mask,
                    },
                    interpreter: interp.into(),
                    flags: Flags::parse(&flags).unwrap(),
                }
            })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(r in arb_rule()) {
            let line = encode(&r).unwrap();
            prop_assert_eq!(decode(&line).unwrap(), r);
        }

        #[test]
        fn kernel_text_round_trip(r in arb_rule()) {
            // Render as the kernel would and parse it back.
            let Matcher::Magic { offset, magic, mask } = &r.matcher else { unreachable!() };
            let mut text = format!("enabled\ninterpreter {}\nflags: {}\noffset {offset}\nmagic {}\n",
                r.interpreter.display(), r.flags.effective(), crate::model::to_hex(magic));
            if let Some(m) = mask { text.push_str(&format!("mask {}\n", crate::model::to_hex(m))); }
            let e = parse_entry(&r.name, &text).unwrap();
            prop_assert!(r.same_as(&e));
        }

        #[test]
        fn decode_never_panics(s in "\\PC{0,200}") {
            let _ = decode(&s);
            let _ = parse_entry("x", &s);
        }
    }

    /// Fuzz crash (fuzz/artifacts/register_line/crash-40c9ec38...): a magic of 25 bytes with
    /// a mask of 20 decoded, and then could not be encoded. The kernel refuses such a line
    /// (EINVAL), so decoding does too.
    #[test]
    fn fuzz_regression_mask_length_differs_from_magic() {
        let line = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/artifacts/register_line/crash-40c9ec382e7555087ec7da78762a8653bf36dac6"
        ))
        .unwrap();
        let e = decode(&line).unwrap_err();
        assert!(e.reason.contains("mask is 20 bytes"), "{e}");
    }
}
