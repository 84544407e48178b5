//! The I/O side of doctor: reads a target, its loader, libraries and the winning interpreter
//! (all confined to the root where they live) into the plain facts that checks.rs judges.

use super::elf::{self, ElfError, ElfFacts};
use super::libs::{self, LibReport, Libc, Resolver};
use super::loadable::{self, Layout, Loader};
use super::rootfs::{open_path_fd, LookupError, Meta, OpenError, Root};
use super::sniff::{self, FileKind};
use crate::catalog::{Catalog, Translator};
use crate::kernel::Snapshot;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Bytes the kernel looks at when matching binfmt_misc entries and `#!`.
pub const HEADER_LEN: usize = 256;

/// A parsed ELF file found inside a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Root-relative path after following symlinks.
    pub real_path: String,
    pub meta: Meta,
    pub facts: ElfFacts,
}

/// Why an ELF could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Open(#[from] OpenError),
    #[error("not an ELF file")]
    NotElf,
    #[error("{0}")]
    Elf(#[from] ElfError),
}

/// Reads up to `n` bytes from the start of a file.
pub fn read_header(file: &File, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    buf.truncate(got);
    buf
}

/// Parses an open ELF file, reading only the parts the analysis needs.
pub fn parse_file(file: &File) -> Result<ElfFacts, ElfError> {
    let cache = object::ReadCache::new(file);
    elf::parse(&cache)
}

/// Opens and parses the ELF at `path` inside the root.
pub fn load_elf_at(root: &Root, path: &str) -> Result<Loaded, LoadError> {
    let (file, meta) = root.open_regular(path)?;
    if read_header(&file, 4) != b"\x7fELF" {
        return Err(LoadError::NotElf);
    }
    let facts = parse_file(&file)?;
    let real_path = root
        .real_path(file.as_fd())
        .unwrap_or_else(|| path.to_string());
    Ok(Loaded {
        real_path,
        meta,
        facts,
    })
}

/// What the root has at the binary's PT_INTERP path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum LoaderState {
    Present {
        real_path: String,
        description: String,
        compatible: bool,
        libc: Libc,
        #[serde(skip_serializing_if = "Option::is_none")]
        x86_isa_level: Option<u8>,
    },
    Missing {
        reason: String,
    },
    Unusable {
        reason: String,
    },
}

/// A loader found in the root by looking at the usual places.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootLoader {
    pub path: String,
    pub libc: Libc,
    pub description: String,
}

/// Loaders present in the root, and cross sysroots such as /usr/aarch64-linux-gnu.
pub fn root_loaders(root: &Root) -> Vec<RootLoader> {
    let mut out = Vec::new();
    let mut dirs: Vec<String> = vec!["/lib".into(), "/lib64".into(), "/usr/lib".into()];
    for name in root.list_dir("/usr").unwrap_or_default() {
        if name.contains("-linux-") {
            dirs.push(format!("/usr/{name}/lib"));
            dirs.push(format!("/usr/{name}/lib64"));
        }
    }
    for dir in dirs {
        for name in root.list_dir(&dir).unwrap_or_default() {
            let glibc = name.starts_with("ld-linux") || name.starts_with("ld64.so");
            if !(glibc || name.starts_with("ld-musl")) || !name.contains(".so") {
                continue;
            }
            let path = format!("{dir}/{name}");
            if let Ok(l) = load_elf_at(root, &path) {
                out.push(RootLoader {
                    libc: libs::libc_of_interp(&name),
                    description: l.facts.describe(),
                    path,
                });
            }
        }
    }
    out
}

/// What is known about the interpreter of one binfmt_misc entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterpInfo {
    /// Where it was looked up: "host" (F flag or root `/`) or "root".
    pub looked_up_in: &'static str,
    pub exists: bool,
    pub executable: bool,
    /// None when not ELF or unreadable.
    pub dynamic: Option<bool>,
    pub translator: Option<Translator>,
    /// e.g. `7.2.22` for qemu.
    pub version: Option<String>,
    pub error: Option<String>,
}

/// Which translator an entry uses, from the catalog name or the interpreter's file name.
pub fn translator_of(entry_name: &str, interp: &str, catalog: &Catalog) -> Option<Translator> {
    if let Some(h) = catalog.get(entry_name) {
        return Some(h.translator);
    }
    let base = interp
        .rsplit('/')
        .next()
        .unwrap_or(interp)
        .to_ascii_lowercase();
    if base.starts_with("qemu-") || base.contains("-binfmt") {
        Some(Translator::Qemu)
    } else if base.starts_with("rosetta") {
        Some(Translator::Rosetta)
    } else if base.starts_with("fex") {
        Some(Translator::Fex)
    } else if base.starts_with("box64") {
        Some(Translator::Box64)
    } else {
        None
    }
}

/// Finds "qemu-ARCH version X.Y.Z" inside the interpreter binary, reading it in chunks.
pub fn qemu_version_in(file: &File) -> Option<String> {
    const CHUNK: usize = 1 << 20;
    const NEEDLE: &[u8] = b" version ";
    let mut buf = vec![0u8; CHUNK + 128];
    let mut off = 0u64;
    let limit = 256u64 << 20;
    while off < limit {
        let n = file.read_at(&mut buf, off).ok()?;
        if n == 0 {
            return None;
        }
        let hay = &buf[..n];
        let mut i = 0;
        while let Some(p) = hay[i..].windows(NEEDLE.len()).position(|w| w == NEEDLE) {
            let at = i + p;
            let before = &hay[at.saturating_sub(24)..at];
            if let Some(q) = before.windows(5).rposition(|w| w == b"qemu-") {
                if !before[q..].contains(&0) {
                    let v: String = hay[at + NEEDLE.len()..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit() || **b == b'.')
                        .map(|b| *b as char)
                        .collect();
                    if v.contains('.') {
                        return Some(v);
                    }
                }
            }
            i = at + 1;
        }
        if n < buf.len() {
            return None;
        }
        off += CHUNK as u64;
    }
    None
}

fn inspect_interp_fd(
    fd: Result<OwnedFd, LookupError>,
    translator: Option<Translator>,
    place: &'static str,
) -> InterpInfo {
    let mut info = InterpInfo {
        looked_up_in: place,
        exists: false,
        executable: false,
        dynamic: None,
        translator,
        version: None,
        error: None,
    };
    let fd = match fd {
        Ok(fd) => fd,
        Err(e) => {
            info.error = Some(e.to_string());
            return info;
        }
    };
    info.exists = true;
    match open_path_fd(fd) {
        Ok((file, meta)) => {
            info.executable = meta.executable();
            if let Ok(f) = parse_file(&file) {
                info.dynamic = Some(f.interp.is_some());
            }
            if translator == Some(Translator::Qemu) {
                info.version = qemu_version_in(&file);
            }
        }
        Err(e) => info.error = Some(e.to_string()),
    }
    info
}

/// Inspects the interpreter of every entry. Without F inside a foreign root the kernel looks
/// the interpreter up at exec time inside that root, so that is where it is checked.
pub fn interpreters(
    snapshot: &Snapshot,
    catalog: &Catalog,
    root: &Root,
    host: &Root,
) -> BTreeMap<String, InterpInfo> {
    let mut out = BTreeMap::new();
    for e in &snapshot.entries {
        let interp = e.interpreter.to_string_lossy().into_owned();
        let tr = translator_of(&e.name, &interp, catalog);
        let in_root = !e.flags.fix_binary && !root.is_host_root();
        let (r, place) = if in_root {
            (root, "root")
        } else {
            (host, "host")
        };
        out.insert(
            e.name.clone(),
            inspect_interp_fd(r.resolve(&interp), tr, place),
        );
    }
    out
}

/// Everything gathered about one file to diagnose.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Root-relative path as given.
    pub path: String,
    pub real_path: Option<String>,
    pub meta: Option<Meta>,
    pub open_error: Option<OpenError>,
    pub header: Vec<u8>,
    pub kind: FileKind,
    pub elf: Option<Result<Arc<Loaded>, ElfError>>,
    pub loader: Option<LoaderState>,
    pub libs: Option<LibReport>,
    /// Names of other files in the same directory that link to this binary (multi-call).
    pub aliases: usize,
    /// Judged as a program someone executes (false for non-executable files found by --all:
    /// those are only checked as libraries).
    pub as_program: bool,
    /// What the kernel's loader makes of the file (ELF files only).
    pub loadable: Option<Loadability>,
}

/// The loader model's verdicts on one ELF file (see loadable.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loadability {
    /// `e_machine` as the host's native loader reads it (host byte order).
    pub native_machine: u16,
    /// The layout the native loader reads for that machine.
    pub native_layout: Layout,
    /// The native loader's verdict.
    pub native: Result<(), String>,
    /// An emulator's verdict, in the layout the identity bytes declare (what it reads).
    pub declared: Result<(), String>,
    /// Identity bytes that are wrong for the native layout (the native loader ignores them).
    pub ident_damage: Option<String>,
}

/// Judges an ELF file as the native loader and as an emulator's loader would.
pub fn loadability<'a, R: object::ReadRef<'a>>(data: R, header: &[u8]) -> Loadability {
    let le = cfg!(target_endian = "little");
    let native_machine = loadable::raw_machine(header, le).unwrap_or(0);
    let native_layout = Layout::native_for(native_machine);
    let native = loadable::judge(data, native_layout, Loader::Kernel);
    let declared = match Layout::declared(header) {
        Some(lay) => loadable::judge(data, lay, Loader::Emulator),
        None => Err(format!(
            "the identity bytes declare no valid layout (EI_CLASS {}, EI_DATA {})",
            header.get(4).copied().unwrap_or(0),
            header.get(5).copied().unwrap_or(0)
        )),
    };
    let mut damage = Vec::new();
    let class = if native_layout.class64 { 2 } else { 1 };
    let data = if le { 1 } else { 2 };
    for (i, name, want) in [
        (4, "EI_CLASS", class),
        (5, "EI_DATA", data),
        (6, "EI_VERSION", 1),
    ] {
        let got = header.get(i).copied().unwrap_or(0);
        if got != want {
            damage.push(format!("{name} is {got}, not {want}"));
        }
    }
    Loadability {
        native_machine,
        native_layout,
        native,
        declared,
        ident_damage: (!damage.is_empty()).then(|| damage.join(", ")),
    }
}

impl Subject {
    /// A subject with nothing read yet.
    pub fn empty(path: &str) -> Subject {
        Subject {
            path: path.to_string(),
            real_path: None,
            meta: None,
            open_error: None,
            header: Vec::new(),
            kind: FileKind::Empty,
            elf: None,
            loader: None,
            libs: None,
            aliases: 0,
            as_program: true,
            loadable: None,
        }
    }
}

/// Reads one already-open file (the `Doctor(fd)` path and the normal path share this).
pub fn subject_from_file(
    file: File,
    meta: Meta,
    path: &str,
    real_path: Option<String>,
    resolver: &mut Resolver<'_>,
) -> Subject {
    let mut s = Subject::empty(path);
    s.real_path = real_path.clone();
    s.meta = Some(meta);
    s.header = read_header(&file, HEADER_LEN);
    s.kind = sniff::classify(&s.header);
    if s.kind != FileKind::Elf {
        return s;
    }
    s.loadable = Some(loadability(&object::ReadCache::new(&file), &s.header));
    let facts = match parse_file(&file) {
        Ok(f) => f,
        Err(e) => {
            s.elf = Some(Err(e));
            return s;
        }
    };
    let loaded = Arc::new(Loaded {
        real_path: real_path.unwrap_or_else(|| path.to_string()),
        meta,
        facts,
    });
    if let Some(interp) = &loaded.facts.interp {
        s.loader = Some(loader_state(resolver, interp, &loaded.facts));
    }
    if !loaded.facts.needed.is_empty() {
        let libc = match &s.loader {
            Some(LoaderState::Present { libc, .. }) => *libc,
            _ => loaded
                .facts
                .interp
                .as_deref()
                .map(libs::libc_of_interp)
                .unwrap_or(Libc::Glibc),
        };
        s.libs = Some(resolver.resolve_tree(&loaded, libc));
    }
    s.elf = Some(Ok(loaded));
    s
}

fn loader_state(resolver: &mut Resolver<'_>, interp: &str, facts: &ElfFacts) -> LoaderState {
    match resolver.root().stat(interp) {
        Err(e) => LoaderState::Missing {
            reason: e.to_string(),
        },
        Ok(_) => match resolver.load(interp) {
            Some(l) => LoaderState::Present {
                real_path: l.real_path.clone(),
                description: l.facts.describe(),
                compatible: facts.compatible_library(&l.facts),
                libc: libc_of_loader(&l),
                x86_isa_level: l.facts.x86_isa_level,
            },
            None => LoaderState::Unusable {
                reason: "it is not a readable ELF file".into(),
            },
        },
    }
}

/// The C library of a present loader: musl's loader is libc itself, glibc's is ld-linux.
fn libc_of_loader(l: &Loaded) -> Libc {
    let by_name = libs::libc_of_interp(&l.real_path);
    if by_name != Libc::Unknown {
        return by_name;
    }
    match l.facts.soname.as_deref() {
        Some(s) if s.contains("musl") || s.starts_with("libc.so") => Libc::Musl,
        Some(s) if s.starts_with("ld-linux") || s.starts_with("ld64.so") => Libc::Glibc,
        _ if l.real_path.contains("musl") => Libc::Musl,
        _ => Libc::Unknown,
    }
}

/// Opens `path` inside the root as the kernel would execute it and gathers its facts.
pub fn subject_at(root: &Root, path: &str, resolver: &mut Resolver<'_>) -> Subject {
    match root.open_regular(path) {
        Ok((file, meta)) => {
            let real = root.real_path(file.as_fd());
            let mut s = subject_from_file(file, meta, path, real, resolver);
            s.aliases = count_aliases(root, path, &s);
            s
        }
        Err(e) => {
            let mut s = Subject::empty(path);
            if let OpenError::NotRegular(m) = e {
                s.meta = Some(m);
            }
            s.open_error = Some(e);
            s
        }
    }
}

/// Counts hard links and same-directory symlinks to the binary (busybox-style installs).
fn count_aliases(root: &Root, path: &str, s: &Subject) -> usize {
    let Some(meta) = s.meta else { return 0 };
    let hard = meta.nlink.saturating_sub(1) as usize;
    let target = s.real_path.as_deref().unwrap_or(path);
    let dir = path
        .rsplit_once('/')
        .map(|(d, _)| d)
        .filter(|d| !d.is_empty())
        .unwrap_or("/");
    if hard >= 2 {
        return hard;
    }
    let mut n = hard;
    for name in root.list_dir(dir).unwrap_or_default().iter().take(4096) {
        let p = format!("{}/{name}", dir.trim_end_matches('/'));
        if p == path {
            continue;
        }
        if let Ok(fd) = root.resolve(&p) {
            if root.real_path(fd.as_fd()).as_deref() == Some(target) {
                n += 1;
            }
        }
    }
    n
}
