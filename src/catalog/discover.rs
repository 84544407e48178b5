//! Interpreter discovery: find a handler's interpreter, its version, and whether it is static.

use super::{Handler, Translator};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long an interpreter asked for its version may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(2);

/// Name ending of Debian's wrappers for the P flag, e.g. `aarch64-binfmt-P`.
const P_WRAPPER_SUFFIX: &str = "-binfmt-P";

/// Directories searched after `$PATH` for bare interpreter names.
pub const STANDARD_DIRS: &[&str] = &[
    "/usr/local/bin",
    "/usr/bin",
    "/bin",
    "/usr/local/sbin",
    "/usr/sbin",
    "/usr/libexec/qemu-binfmt",
];

/// An interpreter found on this system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interpreter {
    pub path: PathBuf,
    /// No PT_INTERP: safe with the F flag inside any container.
    pub static_linked: bool,
    /// First line of `--version` (qemu), or Rosetta's version line.
    pub version: Option<String>,
}

/// Why no usable interpreter was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("no interpreter for {handler} found (looked for {}); {hint}", tried.join(", "))]
pub struct Missing {
    pub handler: String,
    pub tried: Vec<String>,
    pub hint: String,
}

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Tests candidate paths for an executable file, opening each directory once: a directory
/// that does not exist costs one failed open for all its candidates, and every other test
/// is a one-name lookup relative to it (a long `$PATH` times many handlers otherwise walks
/// every directory's path again for every name).
#[derive(Default)]
struct DirLookup {
    dirs: Vec<(PathBuf, Option<std::os::fd::OwnedFd>)>,
}

impl DirLookup {
    fn executable(&mut self, p: &Path) -> bool {
        let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
            return executable(p);
        };
        let at = match self.dirs.iter().position(|(d, _)| d == dir) {
            Some(i) => i,
            None => {
                self.dirs.push((dir.to_path_buf(), open_dir(dir)));
                self.dirs.len() - 1
            }
        };
        let Some(fd) = &self.dirs[at].1 else {
            return false;
        };
        nix::sys::stat::fstatat(fd, name, nix::fcntl::AtFlags::empty())
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_mode & 0o111 != 0)
    }
}

/// A directory opened only to look names up in it (`O_PATH`); None when it cannot be.
fn open_dir(dir: &Path) -> Option<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
        .ok()
        .map(std::os::fd::OwnedFd::from)
}

/// How much of a file [`is_static`] reads first.
const HEAD: usize = 4096;

/// True when the ELF file has no PT_INTERP program header (static or static-pie).
pub fn is_static(path: &Path) -> Option<bool> {
    use object::read::elf::{FileHeader, ProgramHeader};
    // The program headers sit near the start: read one page, not a 5 MiB emulator (the
    // whole file only when they do not fit in it).
    let mut head = Vec::with_capacity(HEAD);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).ok()?, HEAD as u64),
        &mut head,
    )
    .ok()?;
    fn no_interp<H: FileHeader<Endian = object::Endianness>>(data: &[u8]) -> Option<bool> {
        let h = H::parse(data).ok()?;
        let e = h.endian().ok()?;
        let phdrs = h.program_headers(e, data).ok()?;
        Some(!phdrs.iter().any(|p| p.p_type(e) == object::elf::PT_INTERP))
    }
    let check = |data: &[u8]| match object::FileKind::parse(data).ok()? {
        object::FileKind::Elf64 => no_interp::<object::elf::FileHeader64<object::Endianness>>(data),
        object::FileKind::Elf32 => no_interp::<object::elf::FileHeader32<object::Endianness>>(data),
        _ => None,
    };
    check(&head).or_else(|| check(&std::fs::read(path).ok()?))
}

/// The candidate paths for a handler, in order, given the search path.
pub fn candidates(h: &Handler, search: &[PathBuf], preserve_argv0: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for c in &h.interpreters {
        // Debian's `ARCH-binfmt-P` links make qemu expect the extra argv[0] of the P flag;
        // they are right only with P, and preferred then.
        let p_wrapper = c.ends_with(P_WRAPPER_SUFFIX);
        if p_wrapper != preserve_argv0 && h.translator == Translator::Qemu {
            continue;
        }
        if c.starts_with('/') {
            out.push(PathBuf::from(c));
        } else {
            out.extend(search.iter().map(|d| d.join(c)));
        }
    }
    out.dedup();
    out
}

/// `$PATH` followed by the standard directories.
pub fn search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .filter(|d| d.is_absolute())
                .collect()
        })
        .unwrap_or_default();
    for d in STANDARD_DIRS {
        let d = PathBuf::from(d);
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// Finds the first existing candidate for a handler.
pub fn locate(h: &Handler, search: &[PathBuf], preserve_argv0: bool) -> Result<PathBuf, Missing> {
    locate_with(h, search, preserve_argv0, &mut DirLookup::default())
}

fn locate_with(
    h: &Handler,
    search: &[PathBuf],
    preserve_argv0: bool,
    lookup: &mut DirLookup,
) -> Result<PathBuf, Missing> {
    candidates(h, search, preserve_argv0)
        .into_iter()
        .find(|p| lookup.executable(p))
        .ok_or_else(|| Missing {
            handler: h.name.clone(),
            tried: h.interpreters.clone(),
            hint: match h.translator {
                Translator::Qemu => "install Debian's qemu-user-static (`apt-get install qemu-user-static`) or your distribution's equivalent",
                Translator::Rosetta => "Rosetta exists only inside an Apple Virtualization.framework VM with the Rosetta share mounted",
                Translator::Fex => "install FEX-Emu (https://fex-emu.com)",
                Translator::Box64 => "install box64",
            }
            .to_string(),
        })
}

fn is_p_wrapper(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(P_WRAPPER_SUFFIX))
}

/// The program to ask for `path`'s version. A Debian `ARCH-binfmt-P` wrapper refuses to
/// run unless binfmt_misc starts it with the P flag ("has to be run using kernel
/// binfmt-misc subsystem"); it is a link to a qemu, and that qemu answers for it. A wrapper
/// that does not resolve to another name has no version to ask for: `None`.
pub fn version_program(path: &Path) -> Option<PathBuf> {
    if !is_p_wrapper(path) {
        return Some(path.to_path_buf());
    }
    let target = std::fs::canonicalize(path).ok()?;
    (!is_p_wrapper(&target)).then_some(target)
}

/// The version an interpreter reports, if it reports one: QEMU's line must carry a
/// `version N.M`, so that no error message is ever taken for a version.
pub fn query_version(path: &Path, translator: Translator) -> Option<String> {
    let program = version_program(path)?;
    match translator {
        // Read from the binary when it carries its banner (no emulator start); ask it else.
        Translator::Qemu => super::banner::qemu_banner(&program).or_else(|| {
            crate::sys::version::first_line(&program, &["--version"], VERSION_TIMEOUT)
                .filter(|l| qemu_version(l).is_some())
        }),
        Translator::Fex | Translator::Box64 => {
            crate::sys::version::first_line(&program, &["--version"], VERSION_TIMEOUT)
        }
        Translator::Rosetta => {
            crate::sys::version::labelled(&program, &[], "version:", VERSION_TIMEOUT)
        }
    }
}

/// Asks an interpreter for its version and reads whether it is statically linked.
pub fn inspect(path: PathBuf, translator: Translator) -> Interpreter {
    Interpreter {
        static_linked: is_static(&path).unwrap_or(false),
        version: query_version(&path, translator),
        path,
    }
}

/// Interpreter facts remembered from earlier runs; the fact cache implements this.
pub trait KnownInterpreters {
    /// The remembered facts of the interpreter at `path`, if its file is unchanged since.
    fn known(&self, path: &Path) -> Option<Interpreter>;
}

/// Finds and inspects one handler's interpreter, reusing cached facts for unchanged files.
pub fn discover(
    h: &Handler,
    search: &[PathBuf],
    preserve_argv0: bool,
    cache: Option<&dyn KnownInterpreters>,
) -> Result<Interpreter, Missing> {
    let path = locate(h, search, preserve_argv0)?;
    Ok(cache
        .and_then(|c| c.known(&path))
        .unwrap_or_else(|| inspect(path, h.translator)))
}

/// What [`discover_many`] found.
#[derive(Debug, Default)]
pub struct Discovered {
    /// Per handler: its interpreter, or why none was found.
    pub found: BTreeMap<String, Result<Interpreter, Missing>>,
    /// Interpreters not in the cache: their `version` is still `None`, to be read with
    /// [`versions`] (only shown, so off the critical path of registering).
    pub unversioned: Vec<(PathBuf, Translator)>,
}

/// Discovers many handlers: lookups in order; cached facts are reused, the others read
/// whether they are static now and leave their version to [`versions`].
pub fn discover_many(
    handlers: &[&Handler],
    search: &[PathBuf],
    preserve_argv0: bool,
    cache: Option<&dyn KnownInterpreters>,
) -> Discovered {
    let mut out = BTreeMap::new();
    let mut todo = Vec::new();
    let mut lookup = DirLookup::default();
    for h in handlers {
        match locate_with(h, search, preserve_argv0, &mut lookup) {
            Err(m) => {
                out.insert(h.name.clone(), Err(m));
            }
            Ok(path) => match cache.and_then(|c| c.known(&path)) {
                Some(hit) => {
                    out.insert(h.name.clone(), Ok(hit));
                }
                None => todo.push((h.name.clone(), path, h.translator)),
            },
        }
    }
    let mut unversioned: Vec<(PathBuf, Translator)> = Vec::new();
    for (name, path, t) in todo {
        let static_linked = is_static(&path).unwrap_or(false);
        if !unversioned.iter().any(|(p, _)| *p == path) {
            unversioned.push((path.clone(), t));
        }
        let found = Interpreter {
            path,
            static_linked,
            version: None,
        };
        out.insert(name, Ok(found));
    }
    Discovered {
        found: out,
        unversioned,
    }
}

/// The versions of these interpreters, by path. QEMU's is read from its file (no process);
/// only Rosetta, FEX and box64 are asked, one or two per host.
pub fn versions(todo: &[(PathBuf, Translator)]) -> BTreeMap<PathBuf, Option<String>> {
    todo.iter()
        .map(|(path, t)| (path.clone(), query_version(path, *t)))
        .collect()
}

/// QEMU's version number from its `--version` line, e.g. (7, 2).
pub fn qemu_version(line: &str) -> Option<(u32, u32)> {
    let rest = line.split("version ").nth(1)?;
    crate::sys::release::major_minor(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_order_and_p_wrapper() {
        let c = crate::catalog::Catalog::embedded().unwrap();
        let h = c.get("qemu-aarch64").unwrap();
        let dirs = vec![PathBuf::from("/a"), PathBuf::from("/b")];
        let plain = candidates(h, &dirs, false);
        assert_eq!(plain[0], PathBuf::from("/a/qemu-aarch64-static"));
        assert_eq!(plain[1], PathBuf::from("/b/qemu-aarch64-static"));
        assert!(plain
            .iter()
            .all(|p| !p.to_string_lossy().ends_with("-binfmt-P")));
        let p = candidates(h, &dirs, true);
        assert_eq!(
            p,
            vec![PathBuf::from("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")]
        );
        assert_eq!(
            qemu_version("qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7)"),
            Some((7, 2))
        );
        assert_eq!(qemu_version("nonsense"), None);
    }

    #[test]
    fn lookups_relative_to_each_directory_agree_with_full_paths() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        script(&d.join("exe"), "true");
        std::fs::write(d.join("plain"), "x").unwrap();
        std::fs::create_dir(d.join("subdir")).unwrap();
        std::fs::set_permissions(d.join("subdir"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(d.join("exe"), d.join("link")).unwrap();
        std::os::unix::fs::symlink(d.join("gone"), d.join("dangling")).unwrap();
        // (path, an executable file there)
        let table = [
            (d.join("exe"), true),
            (d.join("link"), true),
            (d.join("plain"), false),
            (d.join("subdir"), false),
            (d.join("dangling"), false),
            (d.join("missing"), false),
            (d.join("no-such-dir/exe"), false),
            (d.join("plain/exe"), false),
            (PathBuf::from("/"), false),
        ];
        let mut lookup = DirLookup::default();
        for (path, want) in &table {
            assert_eq!(lookup.executable(path), *want, "{}", path.display());
            assert_eq!(executable(path), *want, "{}", path.display());
        }
        // Asked again, from the directories already open: the same answers.
        for (path, want) in &table {
            assert_eq!(lookup.executable(path), *want, "{}", path.display());
        }
    }

    /// Writes an executable shell script.
    fn script(path: &Path, body: &str) {
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn p_wrappers_answer_with_their_qemu_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let qemu = d.join("qemu-aarch64-static");
        script(
            &qemu,
            "echo 'qemu-aarch64 version 9.1.3 (test)'; echo 'Copyright'",
        );
        // Debian's wrapper refuses to run unless binfmt_misc starts it.
        let refusing =
            "echo \"qemu: $0 has to be run using kernel binfmt-misc subsystem\" >&2; exit 1";
        let copy = d.join("copy-binfmt-P");
        script(&copy, refusing);
        let error_on_stdout = d.join("qemu-error");
        script(&error_on_stdout, "echo 'qemu: something is wrong'");
        let failing_version = d.join("qemu-failing");
        script(
            &failing_version,
            "echo 'qemu-aarch64 version 9.1.3'; exit 1",
        );
        std::os::unix::fs::symlink(&qemu, d.join("aarch64-binfmt-P")).unwrap();
        std::os::unix::fs::symlink(&copy, d.join("other-binfmt-P")).unwrap();
        let v = Some("qemu-aarch64 version 9.1.3 (test)");
        // (interpreter, program asked, version shown)
        let table: [(&str, Option<PathBuf>, Option<&str>); 7] = [
            ("qemu-aarch64-static", Some(qemu.clone()), v),
            ("aarch64-binfmt-P", Some(qemu.clone()), v),
            ("copy-binfmt-P", None, None),
            ("other-binfmt-P", None, None),
            ("qemu-error", Some(error_on_stdout.clone()), None),
            ("qemu-failing", Some(failing_version.clone()), None),
            ("missing-binfmt-P", None, None),
        ];
        for (name, program, version) in table {
            let path = d.join(name);
            assert_eq!(version_program(&path), program, "{name}");
            let i = inspect(path.clone(), Translator::Qemu);
            assert_eq!(i.version.as_deref(), version, "{name}");
            assert_eq!(i.path, path, "{name}");
        }
        // Rosetta prints its version line with a usage error: that one is kept.
        let rosetta = d.join("rosetta");
        script(
            &rosetta,
            "echo 'Usage: rosetta <x86_64 ELF>' >&2; echo 'version: Rosetta-332.1'; exit 1",
        );
        assert_eq!(
            inspect(rosetta, Translator::Rosetta).version.as_deref(),
            Some("Rosetta-332.1")
        );
    }

    /// The real wrapper from Debian's qemu-user-static, where installed.
    #[test]
    fn debian_aarch64_binfmt_p_shows_its_qemu_version() {
        let wrapper = Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P");
        if !executable(wrapper) {
            eprintln!(
                "SKIPPED: {} is not installed (qemu-user-static)",
                wrapper.display()
            );
            return;
        }
        let i = inspect(wrapper.to_path_buf(), Translator::Qemu);
        let v = i.version.unwrap_or_default();
        assert!(v.starts_with("qemu-aarch64 version "), "{v:?}");
        assert!(!v.contains("binfmt-misc"), "{v:?}");
    }
}
