//! Handler catalog: the embedded `interpreters/*.toml` files plus drop-ins, and name lookup.

pub mod banner;
pub mod discover;
mod handler;

pub use handler::{Handler, Translator};

use crate::model::{Flags, Matcher, Rule};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A catalog file that cannot be used; says which file and why.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("handler file {file}: {reason}; fix or remove the file")]
    Invalid { file: String, reason: String },
    #[error("cannot read handler drop-in directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Handler {
    /// Parses and validates one handler file.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, CatalogError> {
        let invalid = |reason: String| CatalogError::Invalid {
            file: file.to_string(),
            reason,
        };
        let h: Handler = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        check_words(&h).map_err(invalid)?;
        let m = h.matcher().map_err(invalid)?;
        crate::kernel::codec::encode(&Rule {
            name: h.name.clone(),
            matcher: m,
            interpreter: PathBuf::from("/placeholder"),
            flags: h.default_flags().map_err(|e| invalid(e.to_string()))?,
        })
        .map_err(|e| invalid(e.to_string()))?;
        if h.interpreters.is_empty() {
            return Err(invalid("no interpreter candidates".into()));
        }
        Ok(h)
    }

    /// The matcher built from the escaped magic and mask.
    pub fn matcher(&self) -> Result<Matcher, String> {
        let magic = crate::kernel::codec::unescape_bytes(&self.magic)
            .ok_or_else(|| format!("magic {:?} has a bad \\x escape", self.magic))?;
        let mask = match &self.mask {
            Some(m) => Some(
                crate::kernel::codec::unescape_bytes(m)
                    .ok_or_else(|| format!("mask {m:?} has a bad \\x escape"))?,
            ),
            None => None,
        };
        Ok(Matcher::Magic {
            offset: self.offset,
            magic,
            mask,
        })
    }

    pub fn default_flags(&self) -> Result<Flags, crate::model::UnknownFlag> {
        Flags::parse(&self.flags)
    }

    /// The register rule for this handler with a concrete interpreter and flags.
    pub fn rule(&self, interpreter: &Path, flags: Flags) -> Rule {
        Rule {
            name: self.name.clone(),
            // Validated in from_toml; an invalid handler never reaches a Catalog.
            matcher: self.matcher().unwrap_or(Matcher::Extension {
                extension: "invalid".into(),
            }),
            interpreter: interpreter.to_path_buf(),
            flags,
        }
    }

    /// The platform this handler serves first, or `linux/<arch>` when it has none.
    pub fn primary_platform(&self) -> String {
        self.platforms
            .first()
            .cloned()
            .unwrap_or_else(|| format!("linux/{}", self.arch))
    }

    /// True when `word` (already lowercased) names this handler.
    pub fn answers_to(&self, word: &str) -> bool {
        self.name == word
            || self.arch == word
            || self.aliases.iter().any(|a| a == word)
            || self
                .platforms
                .iter()
                .any(|p| p == word || platform_base(p) == word)
    }
}

/// The handler name rule: what users type is lowercased before lookup, so a name, alias or
/// platform with capitals could be listed but never selected.
fn check_words(h: &Handler) -> Result<(), String> {
    let name_ok = !h.name.is_empty()
        && h.name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if !name_ok {
        return Err(format!(
            "handler name {:?} is not allowed: use only lowercase letters, digits, '-', '_' and '.' (e.g. {:?})",
            h.name,
            h.name.to_ascii_lowercase()
        ));
    }
    if let Some(w) = h
        .aliases
        .iter()
        .chain(&h.platforms)
        .find(|w| w.chars().any(|c| c.is_uppercase()))
    {
        return Err(format!(
            "alias or platform {w:?} of handler {:?} has capitals; names are matched lowercased, so write {:?}",
            h.name,
            w.to_lowercase()
        ));
    }
    Ok(())
}

/// `linux/arm/v7` -> `linux/arm`.
fn platform_base(p: &str) -> &str {
    let mut parts = p.splitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(os), Some(arch)) => &p[..os.len() + 1 + arch.len()],
        _ => p,
    }
}

include!(concat!(env!("OUT_DIR"), "/embedded_handlers.rs"));

/// The 34 user-mode targets of QEMU's binfmt table, by QEMU arch name.
pub const QEMU_TARGETS: [&str; 34] = [
    "i386",
    "i486",
    "alpha",
    "arm",
    "armeb",
    "sparc",
    "sparc32plus",
    "sparc64",
    "ppc",
    "ppc64",
    "ppc64le",
    "m68k",
    "mips",
    "mipsel",
    "mipsn32",
    "mipsn32el",
    "mips64",
    "mips64el",
    "sh4",
    "sh4eb",
    "s390x",
    "aarch64",
    "aarch64_be",
    "hppa",
    "riscv32",
    "riscv64",
    "xtensa",
    "xtensaeb",
    "microblaze",
    "microblazeel",
    "or1k",
    "x86_64",
    "hexagon",
    "loongarch64",
];

/// qemu-user targets QEMU's binfmt table lacks but Debian's qemu-user-static registers, with
/// its magic and mask (bookworm's `/usr/lib/binfmt.d/qemu-cris.conf`).
pub const DEBIAN_ONLY_TARGETS: [&str; 1] = ["cris"];

/// qemu-user binaries Debian ships for which no binfmt_misc magic exists anywhere (neither
/// QEMU's qemu-binfmt-conf.sh nor Debian's package defines one), so binfmtd cannot register
/// them: (QEMU arch name, why).
pub const NO_BINFMT_MAGIC: [(&str, &str); 1] = [(
    "nios2",
    "qemu-nios2-static is shipped by Debian, but neither QEMU's qemu-binfmt-conf.sh nor Debian's qemu-user-static defines a binfmt_misc magic for Nios II; run programs with qemu-nios2-static PROGRAM",
)];

/// All known handlers, keyed by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub handlers: BTreeMap<String, Handler>,
    /// Drop-in files that overrode or added handlers.
    pub overrides: Vec<PathBuf>,
}

/// What a user-typed list resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `all`: every handler the planner finds usable.
    All,
    /// Explicit handlers, in the order given, deduplicated.
    Handlers(Vec<String>),
}

/// A list item that names nothing in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("the platform list is empty; give `all` or names such as linux/arm64,riscv64")]
    Empty,
    #[error("unknown platform or handler {0:?}; run `binfmtd platforms --known` to list the names binfmtd knows")]
    Unknown(String),
}

impl Catalog {
    /// The embedded catalog only: the handler files as the build script parsed them (a
    /// test checks that each passes [`Handler::from_toml`] and gives the same value).
    pub fn embedded() -> Result<Self, CatalogError> {
        let mut c = Catalog::default();
        for (_, h) in embedded_handlers() {
            c.handlers.insert(h.name.clone(), h);
        }
        Ok(c)
    }

    /// The embedded catalog with `*.toml` drop-ins from `dir` applied: a drop-in replaces the
    /// embedded file with the same file name, and any handler with the same name.
    pub fn load(dropin_dir: Option<&Path>) -> Result<Self, CatalogError> {
        let mut c = Self::embedded()?;
        let Some(dir) = dropin_dir else { return Ok(c) };
        let embedded = embedded_handlers();
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(c),
            Err(source) => {
                return Err(CatalogError::Io {
                    dir: dir.to_path_buf(),
                    source,
                })
            }
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Io {
                dir: path.clone(),
                source,
            })?;
            let h = Handler::from_toml(&path.display().to_string(), &text)?;
            // A drop-in replaces the embedded file of the same file name (whatever handler
            // that file defined), and any handler of the same name.
            if let Some(stem) = path.file_name().and_then(|n| n.to_str()) {
                if let Some((_, old)) = embedded.iter().find(|(f, _)| *f == stem) {
                    c.handlers.remove(&old.name);
                }
            }
            c.handlers.insert(h.name.clone(), h);
            c.overrides.push(path);
        }
        Ok(c)
    }

    pub fn get(&self, name: &str) -> Option<&Handler> {
        self.handlers.get(name)
    }

    /// Resolves a comma-separated list of OCI platforms, arch aliases or handler names.
    /// A name that several handlers answer to (x86_64: qemu, Rosetta, FEX, box64) resolves
    /// to the qemu one; name the translator (`rosetta`, `fex-x86_64`) to pick another.
    pub fn select(&self, list: &str) -> Result<Selection, SelectError> {
        let words: Vec<String> = list
            .split(',')
            .map(|w| w.trim().to_ascii_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Err(SelectError::Empty);
        }
        if words.iter().any(|w| w == "all") {
            return Ok(Selection::All);
        }
        let mut out: Vec<String> = Vec::new();
        for w in &words {
            let name = self
                .resolve(w)
                .ok_or_else(|| SelectError::Unknown(w.clone()))?;
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(Selection::Handlers(out))
    }

    /// The key binfmtd records a platform word under: the handler it names, or the word
    /// itself when the catalog does not know it.
    pub fn canonical(&self, word: &str) -> String {
        self.resolve(&word.trim().to_ascii_lowercase())
            .unwrap_or_else(|| word.to_string())
    }

    /// One word to one handler name.
    pub fn resolve(&self, word: &str) -> Option<String> {
        if let Some(h) = self.handlers.get(word) {
            return Some(h.name.clone());
        }
        let matches: Vec<&Handler> = self
            .handlers
            .values()
            .filter(|h| h.answers_to(word))
            .collect();
        matches
            .iter()
            .find(|h| h.translator == Translator::Qemu)
            .or_else(|| matches.first())
            .map(|h| h.name.clone())
    }

    /// The qemu handler for an ISA (QEMU arch name), if any.
    pub fn qemu_for_arch(&self, arch: &str) -> Option<&Handler> {
        self.handlers
            .values()
            .find(|h| h.translator == Translator::Qemu && h.arch == arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_script_parsed_every_handler_file_as_from_toml_does() {
        let built = embedded_handlers();
        assert_eq!(built.len(), EMBEDDED_HANDLERS.len());
        for ((file, text), (built_file, built)) in EMBEDDED_HANDLERS.iter().zip(built) {
            assert_eq!(file, &built_file);
            let parsed = Handler::from_toml(file, text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parsed, built, "{file}");
        }
    }

    #[test]
    fn embedded_catalog_is_valid_and_complete() {
        let c = Catalog::embedded().unwrap();
        let qemu: Vec<&str> = c
            .handlers
            .values()
            .filter(|h| h.translator == Translator::Qemu)
            .map(|h| h.arch.as_str())
            .collect();
        for arch in QEMU_TARGETS.iter().chain(&DEBIAN_ONLY_TARGETS) {
            assert!(qemu.contains(arch), "no qemu handler for {arch}");
        }
        assert_eq!(qemu.len(), QEMU_TARGETS.len() + DEBIAN_ONLY_TARGETS.len());
        for (arch, _) in NO_BINFMT_MAGIC {
            assert!(
                !qemu.contains(&arch),
                "{arch} has no binfmt magic to register"
            );
        }
        for t in [Translator::Rosetta, Translator::Fex, Translator::Box64] {
            assert!(c
                .handlers
                .values()
                .any(|h| h.translator == t && h.arch == "x86_64"));
        }
    }

    /// No handler gets C by default (a setuid foreign binary would run its translator as
    /// root under the caller's environment; docs/security.md); qemu gets exactly F.
    #[test]
    fn default_flags_never_include_credentials() {
        let c = Catalog::embedded().unwrap();
        let table = [
            ("qemu-aarch64", "F"),
            ("qemu-riscv64", "F"),
            ("rosetta", "F"),
            ("fex-x86_64", "POF"),
            ("box64", ""),
        ];
        for (name, want) in table {
            let h = c.get(name).unwrap();
            assert_eq!(h.default_flags().unwrap().to_string(), want, "{name}");
        }
        for h in c.handlers.values() {
            let f = h.default_flags().unwrap();
            assert!(!f.credentials, "{} defaults to C", h.name);
            if h.translator == Translator::Qemu {
                assert_eq!(f.to_string(), "F", "{}", h.name);
            }
        }
    }

    #[test]
    fn handler_names_must_be_selectable() {
        let text = |name: &str, alias: &str| {
            format!(
                "name = \"{name}\"\ntranslator = \"qemu\"\narch = \"x\"\nfamily = \"x\"\naliases = [\"{alias}\"]\nmagic = '\\x7f'\ninterpreters = [\"/usr/bin/x\"]\n"
            )
        };
        let table = [
            ("qemu-foo", "foo", None),
            ("my_box64.v2", "bar-1", None),
            (
                "Qemu-Foo",
                "foo",
                Some("lowercase letters, digits, '-', '_' and '.'"),
            ),
            ("qemu foo", "foo", Some("not allowed")),
            ("qemu+foo", "foo", Some("not allowed")),
            ("", "foo", Some("not allowed")),
            ("qemu-foo", "Foo", Some("has capitals")),
        ];
        for (name, alias, err) in table {
            let got = Handler::from_toml("d.toml", &text(name, alias));
            match (got, err) {
                (Ok(_), None) => {}
                (Err(e), Some(want)) => {
                    let e = e.to_string();
                    assert!(e.contains(want) && e.contains("d.toml"), "{name}: {e}");
                }
                (got, want) => panic!("{name}/{alias}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn selection_accepts_every_naming_scheme() {
        let c = Catalog::embedded().unwrap();
        let table = [
            ("linux/arm64", "qemu-aarch64"),
            ("arm64", "qemu-aarch64"),
            ("aarch64", "qemu-aarch64"),
            ("qemu-aarch64", "qemu-aarch64"),
            ("linux/arm/v7", "qemu-arm"),
            ("armhf", "qemu-arm"),
            ("linux/amd64", "qemu-x86_64"),
            ("amd64", "qemu-x86_64"),
            ("rosetta", "rosetta"),
            ("linux/riscv64", "qemu-riscv64"),
            ("ppc64el", "qemu-ppc64le"),
            ("linux/386", "qemu-i386"),
            ("loong64", "qemu-loongarch64"),
            ("LINUX/S390X", "qemu-s390x"),
        ];
        for (word, want) in table {
            assert_eq!(
                c.select(word),
                Ok(Selection::Handlers(vec![want.to_string()])),
                "{word}"
            );
        }
        assert_eq!(c.select("all"), Ok(Selection::All));
        assert_eq!(c.select(" , "), Err(SelectError::Empty));
        assert_eq!(
            c.select("arm64,nonsense"),
            Err(SelectError::Unknown("nonsense".into()))
        );
        assert_eq!(
            c.select("arm64,aarch64,linux/arm64"),
            Ok(Selection::Handlers(vec!["qemu-aarch64".into()]))
        );
    }

    #[test]
    fn dropin_overrides_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let base = Catalog::embedded().unwrap();
        let mut h = base.get("qemu-riscv64").unwrap().clone();
        h.interpreters = vec!["/opt/qemu/bin/qemu-riscv64".into()];
        std::fs::write(
            dir.path().join("qemu-riscv64.toml"),
            toml::to_string(&h).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "x").unwrap();
        let c = Catalog::load(Some(dir.path())).unwrap();
        assert_eq!(c.get("qemu-riscv64").unwrap().interpreters, h.interpreters);
        // Same file name, another handler name: the embedded fex.toml handler is replaced.
        let mut fex = base.get("fex-x86_64").unwrap().clone();
        fex.name = "fex-emu-x86_64".into();
        std::fs::write(dir.path().join("fex.toml"), toml::to_string(&fex).unwrap()).unwrap();
        let c = Catalog::load(Some(dir.path())).unwrap();
        assert!(c.get("fex-x86_64").is_none() && c.get("fex-emu-x86_64").is_some());
        // A name with capitals would be listed but never selectable: refused at load.
        fex.name = "FEX-x86_64".into();
        std::fs::write(dir.path().join("fex.toml"), toml::to_string(&fex).unwrap()).unwrap();
        let e = Catalog::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            e.contains("fex.toml") && e.contains("\"FEX-x86_64\""),
            "{e}"
        );
        std::fs::remove_file(dir.path().join("fex.toml")).unwrap();
        std::fs::write(dir.path().join("bad.toml"), "name = 1").unwrap();
        let e = Catalog::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("bad.toml"), "{e}");
    }
}
