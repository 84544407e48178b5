//! Pure dependency checks: the PT_INTERP loader (missing, other libc, wrong arch) and the
//! DT_NEEDED libraries (missing, wrong architecture).

use super::checks::View;
use super::findings::{Finding, FindingId as Id, Severity};
use super::inspect::{Loaded, LoaderState, RootLoader, Subject};
use super::libs::{self, Libc};

pub fn loader_checks(s: &Subject, l: &Loaded, v: &View<'_>, out: &mut Vec<Finding>) {
    let f = &l.facts;
    let (Some(interp), Some(state)) = (&f.interp, &s.loader) else {
        return;
    };
    let want = libs::libc_of_interp(interp);
    let same_arch: Vec<&RootLoader> = v
        .root_loaders
        .iter()
        .filter(|r| {
            r.description == f.describe()
                || r.description.starts_with(&format!(
                    "{}-bit {}-endian {}",
                    f.class,
                    if f.little_endian { "little" } else { "big" },
                    f.machine_name
                ))
        })
        .collect();
    match state {
        LoaderState::Missing { reason } => {
            let has: Vec<String> = v
                .root_loaders
                .iter()
                .map(|r| format!("{} ({}, {})", r.path, r.libc.name(), r.description))
                .collect();
            let sysroot = same_arch
                .iter()
                .find(|r| r.path.starts_with("/usr/") && r.path.matches('/').count() >= 4);
            let fix = match (sysroot, libs::triplet(f)) {
                (Some(r), _) => format!(
                    "a cross sysroot has it: run with QEMU_LD_PREFIX={} (qemu), or install the {} C library into the root",
                    r.path.rsplit_once("/lib").map(|(d, _)| d).unwrap_or("/usr"),
                    f.platform.as_deref().unwrap_or("foreign")
                ),
                (None, Some(t)) if want == Libc::Glibc => format!(
                    "install the {t} glibc into the root (Debian: dpkg --add-architecture {0} && apt-get install libc6:{0}), or run the program inside a {1} image",
                    debian_arch(t),
                    f.platform.as_deref().unwrap_or("matching")
                ),
                _ => format!("run the program inside a root or image that provides {interp}"),
            };
            out.push(
                Finding::error(Id::LoaderMissing, format!("the loader {interp} does not exist in {}: the program fails with \"Could not open '{interp}'\" or \"No such file or directory\"", v.root_name))
                    .about(interp)
                    .with("missing path", interp)
                    .with("lookup", reason)
                    .with("root has", if has.is_empty() { "no dynamic loader at all".to_string() } else { has.join("; ") })
                    .fix(fix),
            );
            let other: Vec<&&RootLoader> = same_arch
                .iter()
                .filter(|r| r.libc != want && r.libc != Libc::Unknown)
                .collect();
            if let Some(o) = other.first() {
                out.push(libc_mismatch(
                    interp,
                    want,
                    o.libc,
                    &o.path,
                    Severity::Error,
                ));
            }
        }
        LoaderState::Present {
            real_path,
            description,
            compatible: false,
            ..
        } => out.push(
            Finding::error(
                Id::LoaderWrongArch,
                format!(
                    "the loader {interp} in {} is {description}, but the program is {}",
                    v.root_name,
                    f.describe()
                ),
            )
            .about(interp)
            .with("loader", real_path)
            .fix("run the program in a root of its own architecture"),
        ),
        LoaderState::Present {
            libc, real_path, ..
        } if *libc != want && *libc != Libc::Unknown && want != Libc::Unknown => out.push(
            libc_mismatch(interp, want, *libc, real_path, Severity::Warning),
        ),
        LoaderState::Present { .. } => {}
        LoaderState::Unusable { reason } => out.push(
            Finding::error(
                Id::LoaderWrongArch,
                format!("the loader {interp} exists in {} but {reason}", v.root_name),
            )
            .about(interp)
            .fix("reinstall the C library package of the root"),
        ),
    }
}

fn libc_mismatch(interp: &str, want: Libc, has: Libc, path: &str, sev: Severity) -> Finding {
    Finding::new(Id::LoaderLibcMismatch, sev, format!("the program was built for {} ({interp}) but the root provides {} ({path})", want.name(), has.name()))
        .about(interp)
        .with("expected", want.name())
        .with("root has", format!("{} at {path}", has.name()))
        .fix(match want {
            Libc::Glibc => "use a glibc-based image (Debian, Ubuntu, Fedora) or rebuild against musl; on Alpine `apk add gcompat` helps some programs",
            _ => "use a musl-based image (Alpine) or rebuild the program against glibc",
        })
}

/// Debian architecture name from a multiarch triplet.
fn debian_arch(t: &str) -> &str {
    match t {
        "aarch64-linux-gnu" => "arm64",
        "arm-linux-gnueabihf" => "armhf",
        "arm-linux-gnueabi" => "armel",
        "x86_64-linux-gnu" => "amd64",
        "i386-linux-gnu" => "i386",
        "powerpc64le-linux-gnu" => "ppc64el",
        "mips64el-linux-gnuabi64" => "mips64el",
        "loongarch64-linux-gnu" => "loong64",
        t => t.split('-').next().unwrap_or(t),
    }
}

pub fn library_checks(s: &Subject, out: &mut Vec<Finding>) {
    let Some(r) = &s.libs else { return };
    for u in &r.unresolved {
        if let Some((path, what)) = u.wrong_arch.first() {
            out.push(
                Finding::error(Id::LibraryWrongArch, format!("{} is needed by {} but only found for another architecture: {path} is {what}", u.name, u.needed_by))
                    .about(&u.name)
                    .with("library", &u.name)
                    .with("found", u.wrong_arch.iter().map(|(p, w)| format!("{p} ({w})")).collect::<Vec<_>>().join("; "))
                    .fix(format!("install the package providing {} for the program's architecture into the root", u.name)),
            );
        } else {
            out.push(
                Finding::error(
                    Id::LibraryMissing,
                    format!(
                        "{} is needed by {} but is not in the root",
                        u.name, u.needed_by
                    ),
                )
                .about(&u.name)
                .with("library", &u.name)
                .with("searched", u.searched.join(":"))
                .fix(format!(
                    "install the package that provides {} (Debian: apt-file search {})",
                    u.name, u.name
                )),
            );
        }
    }
}
