//! DT_NEEDED resolution as the foreign loader would do it: RPATH/RUNPATH with `$ORIGIN`, the
//! root's ld.so.conf (with includes) or musl's path file, then the default multiarch dirs.

use super::elf::ElfFacts;
use super::inspect::{load_elf_at, Loaded};
use super::rootfs::Root;
use object::elf as e;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Which C library a loader belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Libc {
    Glibc,
    Musl,
    Bionic,
    Unknown,
}

impl Libc {
    pub fn name(self) -> &'static str {
        match self {
            Libc::Glibc => "glibc",
            Libc::Musl => "musl",
            Libc::Bionic => "bionic (Android)",
            Libc::Unknown => "an unknown C library",
        }
    }
}

/// The C library implied by a PT_INTERP path.
pub fn libc_of_interp(interp: &str) -> Libc {
    let base = interp.rsplit('/').next().unwrap_or(interp);
    if base.starts_with("ld-musl") {
        Libc::Musl
    } else if base == "linker" || base == "linker64" {
        Libc::Bionic
    } else if base.starts_with("ld-linux")
        || base.starts_with("ld64.so")
        || base.starts_with("ld.so")
    {
        Libc::Glibc
    } else {
        Libc::Unknown
    }
}

/// Debian multiarch triplet for the binary's ABI.
pub fn triplet(f: &ElfFacts) -> Option<&'static str> {
    let hard = f.e_flags & e::EF_ARM_ABI_FLOAT_HARD != 0;
    Some(match (f.machine, f.class, f.little_endian) {
        (e::EM_X86_64, 64, _) => "x86_64-linux-gnu",
        (e::EM_X86_64, 32, _) => "x86_64-linux-gnux32",
        (e::EM_386, _, _) => "i386-linux-gnu",
        (e::EM_AARCH64, _, true) => "aarch64-linux-gnu",
        (e::EM_ARM, _, true) if hard => "arm-linux-gnueabihf",
        (e::EM_ARM, _, true) => "arm-linux-gnueabi",
        (e::EM_RISCV, 64, _) => "riscv64-linux-gnu",
        (e::EM_PPC64, _, true) => "powerpc64le-linux-gnu",
        (e::EM_PPC64, _, false) => "powerpc64-linux-gnu",
        (e::EM_PPC, _, _) => "powerpc-linux-gnu",
        (e::EM_S390, _, _) => "s390x-linux-gnu",
        (e::EM_MIPS, 64, true) => "mips64el-linux-gnuabi64",
        (e::EM_MIPS, 64, false) => "mips64-linux-gnuabi64",
        (e::EM_MIPS, 32, true) if f.e_flags & e::EF_MIPS_ABI2 != 0 => "mips64el-linux-gnuabin32",
        (e::EM_MIPS, 32, true) => "mipsel-linux-gnu",
        (e::EM_MIPS, 32, false) => "mips-linux-gnu",
        (e::EM_LOONGARCH, _, _) => "loongarch64-linux-gnu",
        (e::EM_SPARCV9, _, _) => "sparc64-linux-gnu",
        (e::EM_68K, _, _) => "m68k-linux-gnu",
        (e::EM_SH, _, _) => "sh4-linux-gnu",
        (e::EM_ALPHA, _, _) => "alpha-linux-gnu",
        (e::EM_PARISC, _, _) => "hppa-linux-gnu",
        _ => return None,
    })
}

/// musl's architecture name, used in `/etc/ld-musl-ARCH.path` and `ld-musl-ARCH.so.1`.
pub fn musl_arch(f: &ElfFacts) -> Option<&'static str> {
    let hard = f.e_flags & e::EF_ARM_ABI_FLOAT_HARD != 0;
    Some(match (f.machine, f.class, f.little_endian) {
        (e::EM_X86_64, 64, _) => "x86_64",
        (e::EM_386, _, _) => "i386",
        (e::EM_AARCH64, _, true) => "aarch64",
        (e::EM_ARM, _, true) if hard => "armhf",
        (e::EM_ARM, _, true) => "arm",
        (e::EM_RISCV, 64, _) => "riscv64",
        (e::EM_PPC64, _, true) => "powerpc64le",
        (e::EM_PPC64, _, false) => "powerpc64",
        (e::EM_S390, _, _) => "s390x",
        (e::EM_MIPS, 64, true) => "mips64el",
        (e::EM_MIPS, 32, true) => "mipsel",
        (e::EM_LOONGARCH, _, _) => "loongarch64",
        _ => return None,
    })
}

/// glibc's built-in directories after ld.so.conf (Debian multiarch first, then lib64/lib).
pub fn default_dirs(f: &ElfFacts) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(t) = triplet(f) {
        v.push(format!("/lib/{t}"));
        v.push(format!("/usr/lib/{t}"));
    }
    if f.class == 64 {
        v.push("/lib64".into());
        v.push("/usr/lib64".into());
    }
    v.push("/lib".into());
    v.push("/usr/lib".into());
    v
}

/// One meaningful line of an ld.so.conf file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfLine {
    Dir(String),
    Include(String),
}

/// Parses ld.so.conf text: comments, `include PATTERN`, directories (several per line allowed).
pub fn parse_ld_so_conf(text: &str) -> Vec<ConfLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with("hwcap ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("include") {
            if rest.starts_with([' ', '\t']) {
                out.extend(
                    rest.split_whitespace()
                        .map(|p| ConfLine::Include(p.to_string())),
                );
                continue;
            }
        }
        for d in line.split([' ', '\t', ':', ',']).filter(|d| !d.is_empty()) {
            // Legacy `dir=TYPE` suffix.
            let d = d.split('=').next().unwrap_or(d);
            out.push(ConfLine::Dir(d.trim_end_matches('/').to_string()));
        }
    }
    out
}

/// `fnmatch` subset used by ld.so.conf includes: `*` and `?`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    !name.starts_with('.') && go(pattern.as_bytes(), name.as_bytes())
}

/// Replaces `$ORIGIN`, `$LIB` and `$PLATFORM` (also in `${...}` form).
pub fn expand(entry: &str, origin: &str, f: &ElfFacts) -> String {
    let lib = if f.class == 64 { "lib64" } else { "lib" };
    let platform = f.qemu_arch.as_deref().unwrap_or("");
    entry
        .replace("${ORIGIN}", origin)
        .replace("$ORIGIN", origin)
        .replace("${LIB}", lib)
        .replace("$LIB", lib)
        .replace("${PLATFORM}", platform)
        .replace("$PLATFORM", platform)
}

/// A DT_NEEDED name that the loader will not find.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unresolved {
    pub name: String,
    pub needed_by: String,
    /// Directories searched, in order.
    pub searched: Vec<String>,
    /// Files of that name that exist but were skipped: (path, what they are).
    pub wrong_arch: Vec<(String, String)>,
}

/// The outcome of resolving a whole dependency tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LibReport {
    /// (name, root-relative path) for every library found.
    pub found: Vec<(String, String)>,
    pub unresolved: Vec<Unresolved>,
    /// The tree was larger than the limit and was cut.
    pub truncated: bool,
}

/// Most libraries followed for one binary.
const MAX_LIBS: usize = 1000;

/// Resolves libraries inside one root; caches parsed libraries and ld.so.conf across calls.
pub struct Resolver<'r> {
    root: &'r Root,
    conf_dirs: Option<Vec<String>>,
    musl_dirs: HashMap<&'static str, Vec<String>>,
    /// Lookup path -> parsed library (None: absent or not ELF).
    cache: HashMap<String, Option<Arc<Loaded>>>,
}

impl<'r> Resolver<'r> {
    pub fn new(root: &'r Root) -> Self {
        Resolver {
            root,
            conf_dirs: None,
            musl_dirs: HashMap::new(),
            cache: HashMap::new(),
        }
    }

    pub fn root(&self) -> &'r Root {
        self.root
    }

    /// Directories from the root's /etc/ld.so.conf and its includes.
    pub fn conf_dirs(&mut self) -> Vec<String> {
        if let Some(d) = &self.conf_dirs {
            return d.clone();
        }
        let mut dirs = Vec::new();
        self.read_conf("/etc/ld.so.conf", 0, &mut dirs);
        self.conf_dirs = Some(dirs.clone());
        dirs
    }

    fn read_conf(&self, path: &str, depth: u32, out: &mut Vec<String>) {
        if depth > 8 {
            return;
        }
        let Ok(bytes) = self.root.read_small(path, 1 << 20) else {
            return;
        };
        for line in parse_ld_so_conf(&String::from_utf8_lossy(&bytes)) {
            match line {
                ConfLine::Dir(d) if !out.contains(&d) => out.push(d),
                ConfLine::Dir(_) => {}
                ConfLine::Include(pat) => {
                    let pat = if pat.starts_with('/') {
                        pat
                    } else {
                        format!("/etc/{pat}")
                    };
                    let (dir, file) = pat.rsplit_once('/').unwrap_or(("", &pat));
                    let dir = if dir.is_empty() { "/" } else { dir };
                    if file.contains(['*', '?']) {
                        for name in self.root.list_dir(dir).unwrap_or_default() {
                            if glob_match(file, &name) {
                                self.read_conf(&format!("{dir}/{name}"), depth + 1, out);
                            }
                        }
                    } else {
                        self.read_conf(&pat, depth + 1, out);
                    }
                }
            }
        }
    }

    fn musl_path(&mut self, f: &ElfFacts) -> Vec<String> {
        let Some(arch) = musl_arch(f) else {
            return vec!["/lib".into(), "/usr/local/lib".into(), "/usr/lib".into()];
        };
        if let Some(d) = self.musl_dirs.get(arch) {
            return d.clone();
        }
        let dirs = match self
            .root
            .read_small(&format!("/etc/ld-musl-{arch}.path"), 1 << 16)
        {
            Ok(b) => String::from_utf8_lossy(&b)
                .split(['\n', ':'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Err(_) => vec!["/lib".into(), "/usr/local/lib".into(), "/usr/lib".into()],
        };
        self.musl_dirs.insert(arch, dirs.clone());
        dirs
    }

    /// Parses the ELF at `path` inside the root, cached.
    pub fn load(&mut self, path: &str) -> Option<Arc<Loaded>> {
        if let Some(hit) = self.cache.get(path) {
            return hit.clone();
        }
        let got = load_elf_at(self.root, path).ok().map(Arc::new);
        self.cache.insert(path.to_string(), got.clone());
        got
    }

    /// Search directories for a library needed by `obj`, in the loader's order.
    fn search_dirs(&mut self, obj: &Loaded, exe: &Loaded, libc: Libc) -> Vec<String> {
        let origin = |l: &Loaded| {
            l.real_path
                .rsplit_once('/')
                .map(|(d, _)| {
                    if d.is_empty() {
                        "/".to_string()
                    } else {
                        d.to_string()
                    }
                })
                .unwrap_or_else(|| "/".into())
        };
        let f = &obj.facts;
        let mut dirs: Vec<String> = Vec::new();
        let expand_all = |list: &[String], l: &Loaded, out: &mut Vec<String>| {
            out.extend(
                list.iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| expand(s, &origin(l), &l.facts)),
            );
        };
        if libc == Libc::Musl {
            expand_all(&f.rpath, obj, &mut dirs);
            expand_all(&f.runpath, obj, &mut dirs);
            dirs.extend(self.musl_path(f));
            return dirs;
        }
        if f.runpath.is_empty() {
            expand_all(&f.rpath, obj, &mut dirs);
            if exe.facts.runpath.is_empty() && !std::ptr::eq(obj, exe) {
                expand_all(&exe.facts.rpath, exe, &mut dirs);
            }
        }
        expand_all(&f.runpath, obj, &mut dirs);
        dirs.extend(self.conf_dirs());
        dirs.extend(default_dirs(f));
        let mut seen = HashSet::new();
        dirs.retain(|d| seen.insert(d.clone()));
        dirs
    }

    /// Resolves the whole DT_NEEDED tree of `exe` (breadth first, like ld.so).
    pub fn resolve_tree(&mut self, exe: &Arc<Loaded>, libc: Libc) -> LibReport {
        let mut report = LibReport::default();
        let mut loaded: HashSet<String> = HashSet::new();
        let mut queue: VecDeque<Arc<Loaded>> = VecDeque::from([exe.clone()]);
        let mut done: HashSet<String> = HashSet::from([exe.real_path.clone()]);
        while let Some(obj) = queue.pop_front() {
            for name in &obj.facts.needed {
                if !loaded.insert(name.clone()) {
                    continue;
                }
                if report.found.len() >= MAX_LIBS {
                    report.truncated = true;
                    return report;
                }
                let dirs = if name.contains('/') {
                    vec![String::new()]
                } else {
                    self.search_dirs(&obj, exe, libc)
                };
                let mut wrong = Vec::new();
                let mut hit = None;
                for d in &dirs {
                    let path = if d.is_empty() {
                        name.clone()
                    } else {
                        format!("{}/{name}", d.trim_end_matches('/'))
                    };
                    let Some(lib) = self.load(&path) else {
                        continue;
                    };
                    if exe.facts.compatible_library(&lib.facts) {
                        hit = Some(lib);
                        break;
                    }
                    wrong.push((path, lib.facts.describe()));
                }
                match hit {
                    Some(lib) => {
                        report.found.push((name.clone(), lib.real_path.clone()));
                        if done.insert(lib.real_path.clone()) {
                            queue.push_back(lib);
                        }
                    }
                    None => report.unresolved.push(Unresolved {
                        name: name.clone(),
                        needed_by: obj.real_path.clone(),
                        searched: dirs.into_iter().filter(|d| !d.is_empty()).collect(),
                        wrong_arch: wrong,
                    }),
                }
            }
        }
        report
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ld_so_conf_parsing() {
        let text = "# comment\ninclude /etc/ld.so.conf.d/*.conf\n/usr/local/lib # trailing\n\n/opt/a:/opt/b\nhwcap 0 nosegneg\ninclude\tfoo.conf other.conf\n/x/=libc6\n";
        assert_eq!(
            parse_ld_so_conf(text),
            vec![
                ConfLine::Include("/etc/ld.so.conf.d/*.conf".into()),
                ConfLine::Dir("/usr/local/lib".into()),
                ConfLine::Dir("/opt/a".into()),
                ConfLine::Dir("/opt/b".into()),
                ConfLine::Include("foo.conf".into()),
                ConfLine::Include("other.conf".into()),
                ConfLine::Dir("/x".into()),
            ]
        );
    }

    #[test]
    fn glob_table() {
        for (p, n, want) in [
            ("*.conf", "libc.conf", true),
            ("*.conf", "libc.conf.bak", false),
            ("*.conf", ".hidden.conf", false),
            ("x86_64-linux-gnu.con?", "x86_64-linux-gnu.conf", true),
            ("*", "anything", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
        ] {
            assert_eq!(glob_match(p, n), want, "{p} {n}");
        }
    }

    #[test]
    fn libc_table() {
        for (i, want) in [
            ("/lib/ld-linux-aarch64.so.1", Libc::Glibc),
            ("/lib64/ld-linux-x86-64.so.2", Libc::Glibc),
            ("/lib/ld-linux-armhf.so.3", Libc::Glibc),
            ("/lib64/ld64.so.2", Libc::Glibc),
            ("/lib/ld.so.1", Libc::Glibc),
            ("/lib/ld-musl-aarch64.so.1", Libc::Musl),
            ("/system/bin/linker64", Libc::Bionic),
            ("/opt/weird", Libc::Unknown),
        ] {
            assert_eq!(libc_of_interp(i), want, "{i}");
        }
    }

    #[test]
    fn expansion_and_defaults() {
        let f = crate::doctor::elf::parse(
            crate::doctor::testelf::build(&crate::doctor::testelf::Spec::aarch64_dynamic())
                .as_slice(),
        )
        .unwrap();
        assert_eq!(
            expand("$ORIGIN/../lib:${LIB}", "/opt/app/bin", &f),
            "/opt/app/bin/../lib:lib64"
        );
        assert_eq!(expand("/p/$PLATFORM", "/", &f), "/p/aarch64");
        assert_eq!(
            default_dirs(&f)[..2],
            [
                "/lib/aarch64-linux-gnu".to_string(),
                "/usr/lib/aarch64-linux-gnu".to_string()
            ]
        );
        assert_eq!(musl_arch(&f), Some("aarch64"));
    }
}
