//! Plain data shared by every layer: binfmt_misc flags, rules and kernel entries.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// The four binfmt_misc flags the kernel accepts (`P`, `O`, `C`, `F`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flags {
    /// `P`: keep the original argv\[0\].
    pub preserve_argv0: bool,
    /// `O`: pass the binary as an open file descriptor (`AT_EXECFD`).
    pub open_binary: bool,
    /// `C`: credentials come from the binary (setuid works); implies `O`.
    pub credentials: bool,
    /// `F`: the interpreter is opened once at registration time.
    pub fix_binary: bool,
}

/// A flag string contained a character other than `P`, `O`, `C`, `F`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown binfmt_misc flag {0:?}: only P, O, C and F exist")]
pub struct UnknownFlag(pub char);

impl Flags {
    /// Parses a flag string such as `"OCF"` or `"F"` (order and case do not matter).
    pub fn parse(s: &str) -> Result<Self, UnknownFlag> {
        let mut f = Flags::default();
        for c in s.chars() {
            match c.to_ascii_uppercase() {
                'P' => f.preserve_argv0 = true,
                'O' => f.open_binary = true,
                'C' => f.credentials = true,
                'F' => f.fix_binary = true,
                ' ' | '\n' => {}
                other => return Err(UnknownFlag(other)),
            }
        }
        Ok(f)
    }

    /// The flags as the kernel reports them: `C` implies `O`.
    pub fn effective(self) -> Self {
        Flags {
            open_binary: self.open_binary || self.credentials,
            ..self
        }
    }
}

impl fmt::Display for Flags {
    /// Canonical order used by the kernel when it prints flags: `P`, `O`, `C`, `F`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [
            (self.preserve_argv0, 'P'),
            (self.open_binary, 'O'),
            (self.credentials, 'C'),
            (self.fix_binary, 'F'),
        ] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// How an entry recognises files: by magic bytes at an offset, or by file-name extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Matcher {
    /// Type `M`: `(header[offset..] & mask) == (magic & mask)`.
    Magic {
        offset: usize,
        #[serde(with = "hex_bytes")]
        magic: Vec<u8>,
        #[serde(with = "opt_hex_bytes", default)]
        mask: Option<Vec<u8>>,
    },
    /// Type `E`: the file name ends in `.EXT`.
    Extension { extension: String },
}

impl Matcher {
    /// True when the first bytes of a file (`header`, up to 256 bytes) and its name match.
    pub fn matches(&self, header: &[u8], file_name: Option<&str>) -> bool {
        match self {
            Matcher::Magic {
                offset,
                magic,
                mask,
            } => {
                let Some(window) = header.get(*offset..offset.saturating_add(magic.len())) else {
                    return false;
                };
                window.iter().zip(magic).enumerate().all(|(i, (b, m))| {
                    let k = mask
                        .as_ref()
                        .and_then(|mk| mk.get(i))
                        .copied()
                        .unwrap_or(0xff);
                    (b & k) == (m & k)
                })
            }
            Matcher::Extension { extension } => file_name
                .and_then(|n| n.rsplit_once('.'))
                .is_some_and(|(_, ext)| ext == extension),
        }
    }

    /// The same matcher with the magic pre-masked, so that two rules that match the same
    /// files compare equal even when their unmasked magic bytes differ.
    pub fn canonical(&self) -> Self {
        match self {
            Matcher::Magic {
                offset,
                magic,
                mask,
            } => {
                let masked = match mask {
                    Some(m) => magic.iter().zip(m).map(|(a, b)| a & b).collect(),
                    None => magic.clone(),
                };
                let mask = mask.clone().filter(|m| m.iter().any(|b| *b != 0xff));
                Matcher::Magic {
                    offset: *offset,
                    magic: masked,
                    mask,
                }
            }
            e => e.clone(),
        }
    }
}

/// A registration request: everything written to `register` for one entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    #[serde(flatten)]
    pub matcher: Matcher,
    pub interpreter: PathBuf,
    #[serde(with = "flags_string")]
    pub flags: Flags,
}

impl Rule {
    /// True when a kernel entry with this rule's name behaves exactly as this rule would.
    pub fn same_as(&self, entry: &Entry) -> bool {
        self.name == entry.name
            && self.interpreter == entry.interpreter
            && self.flags.effective() == entry.flags.effective()
            && self.matcher.canonical() == entry.matcher.canonical()
    }
}

/// One entry as the kernel reports it under `/proc/sys/fs/binfmt_misc/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub enabled: bool,
    pub interpreter: PathBuf,
    #[serde(with = "flags_string")]
    pub flags: Flags,
    #[serde(flatten)]
    pub matcher: Matcher,
}

impl Entry {
    /// The entry the kernel shows once `rule` is registered (enabled, effective flags).
    pub fn registered(rule: &Rule) -> Entry {
        Entry {
            name: rule.name.clone(),
            enabled: true,
            interpreter: rule.interpreter.clone(),
            flags: rule.flags.effective(),
            matcher: rule.matcher.clone(),
        }
    }

    /// The rule that would recreate this entry.
    pub fn to_rule(&self) -> Rule {
        Rule {
            name: self.name.clone(),
            matcher: self.matcher.clone(),
            interpreter: self.interpreter.clone(),
            flags: self.flags,
        }
    }
}

/// Lowercase hex encoding used in JSON output and in the kernel's entry files.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Inverse of [`to_hex`]; `None` on odd length or a non-hex digit.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_hex(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        super::from_hex(&s).ok_or_else(|| serde::de::Error::custom("invalid hex"))
    }
}

mod opt_hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_some(&super::to_hex(b)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| super::from_hex(&s).ok_or_else(|| serde::de::Error::custom("invalid hex")))
            .transpose()
    }
}

mod flags_string {
    use super::Flags;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(f: &Flags, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&f.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Flags, D::Error> {
        let s = String::deserialize(d)?;
        Flags::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_print() {
        let cases = [
            ("", ""),
            ("F", "F"),
            ("CF", "CF"),
            ("fc", "CF"),
            ("OCF", "OCF"),
            ("POCF", "POCF"),
            ("FP", "PF"),
        ];
        for (input, shown) in cases {
            assert_eq!(Flags::parse(input).unwrap().to_string(), shown, "{input}");
        }
        assert_eq!(Flags::parse("CF").unwrap().effective().to_string(), "OCF");
        assert_eq!(Flags::parse("X"), Err(UnknownFlag('X')));
    }

    #[test]
    fn magic_matching_respects_mask_and_offset() {
        let m = Matcher::Magic {
            offset: 2,
            magic: vec![0xab, 0xc0],
            mask: Some(vec![0xff, 0xf0]),
        };
        let table: [(&[u8], bool); 5] = [
            (&[0, 0, 0xab, 0xcf], true),
            (&[0, 0, 0xab, 0xc0, 9], true),
            (&[0, 0, 0xab, 0xd0], false),
            (&[0, 0, 0xab], false),
            (&[0xab, 0xc0], false),
        ];
        for (hdr, want) in table {
            assert_eq!(m.matches(hdr, None), want, "{hdr:?}");
        }
        let e = Matcher::Extension {
            extension: "exe".into(),
        };
        assert!(e.matches(b"", Some("a.b.exe")));
        assert!(!e.matches(b"", Some("exe")));
        assert!(!e.matches(b"", None));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(from_hex("7f454c46"), Some(vec![0x7f, b'E', b'L', b'F']));
        assert_eq!(from_hex("7f4"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(to_hex(&[0, 255]), "00ff");
    }
}
