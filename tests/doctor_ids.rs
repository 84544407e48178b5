//! Every finding id, triggered by a real file in a real root through the library API; the
//! last test asserts that the set of ids seen equals `FindingId::ALL`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use binfmtd::catalog::Catalog;
use binfmtd::doctor::{self, DoctorArgs, DoctorContext, FindingId, HostFacts, Report};
use binfmtd::kernel::Snapshot;
use binfmtd::model::{Entry, Flags};
use std::collections::BTreeSet;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn entry(catalog: &Catalog, handler: &str, name: &str, interp: &str, flags: &str) -> Entry {
    let rule = catalog
        .get(handler)
        .unwrap()
        .rule(Path::new(interp), Flags::parse(flags).unwrap());
    Entry {
        name: name.into(),
        enabled: true,
        interpreter: rule.interpreter,
        flags: rule.flags.effective(),
        matcher: rule.matcher,
    }
}

fn ctx_with(entries: Vec<Entry>) -> DoctorContext {
    DoctorContext {
        snapshot: Snapshot {
            path: "/proc/sys/fs/binfmt_misc".into(),
            mounted: true,
            enabled: true,
            entries,
            unreadable: vec![],
        },
        catalog: Catalog::embedded().unwrap(),
        host: HostFacts {
            arch: "x86_64".into(),
            native: vec!["x86_64".into(), "i386".into()],
            page_size: 4096,
            x86_64_level: Some(4),
            kernel: None,
        },
        host_root: PathBuf::from("/"),
        owned: Default::default(),
    }
}

fn ctx(flags: &str) -> DoctorContext {
    let c = Catalog::embedded().unwrap();
    ctx_with(vec![entry(
        &c,
        "qemu-aarch64",
        "qemu-aarch64",
        "/usr/bin/qemu-aarch64-static",
        flags,
    )])
}

fn diagnose(root: &Path, path: &str, c: &DoctorContext) -> Report {
    let mut a = DoctorArgs::for_path(path);
    a.root = root.to_path_buf();
    doctor::execute(&a, c).unwrap()
}

fn ids(r: &Report) -> BTreeSet<&'static str> {
    r.subjects
        .iter()
        .flat_map(|s| s.findings.iter())
        .map(|f| f.id.as_str())
        .collect()
}

fn put(root: &Path, path: &str, bytes: &[u8], mode: u32) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(common::cross_bins().join(name)).unwrap()
}

fn gcc(out: &Path, src: &str, flags: &[&str]) -> bool {
    let c = out.with_extension("c");
    std::fs::write(&c, src).unwrap();
    Command::new("gcc")
        .arg(&c)
        .arg("-o")
        .arg(out)
        .args(flags)
        .status()
        .is_ok_and(|s| s.success())
}

/// Rewrites the first PT_NOTE of an ELF64 LE file into a Go build-id note and writes a Go
/// build-info blob (inline version) at the start of the first writable PT_LOAD.
fn make_go_like(mut b: Vec<u8>, version: &str) -> Vec<u8> {
    let rd16 = |b: &[u8], o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize;
    let rd64 = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (rd64(&b, 0x20), rd16(&b, 0x36), rd16(&b, 0x38));
    let mut note_done = false;
    let mut blob_done = false;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(b[ph..ph + 4].try_into().unwrap());
        let flags = u32::from_le_bytes(b[ph + 4..ph + 8].try_into().unwrap());
        let off = rd64(&b, ph + 8);
        if p_type == 4 && !note_done {
            // namesz 4, descsz unchanged, type 4, name "Go\0\0".
            b[off..off + 4].copy_from_slice(&4u32.to_le_bytes());
            b[off + 8..off + 12].copy_from_slice(&4u32.to_le_bytes());
            b[off + 12..off + 16].copy_from_slice(b"Go\0\0");
            note_done = true;
        }
        if p_type == 1 && flags & 2 != 0 && !blob_done {
            let mut blob = b"\xff Go buildinf:".to_vec();
            blob.extend_from_slice(&[8, 2]);
            blob.resize(32, 0);
            blob.push(version.len() as u8);
            blob.extend_from_slice(version.as_bytes());
            b[off..off + blob.len()].copy_from_slice(&blob);
            blob_done = true;
        }
    }
    assert!(note_done && blob_done);
    b
}

#[test]
fn every_finding_id_is_triggered() {
    if !common::require_tool("aarch64-linux-gnu-gcc") || !common::require_tool("gcc") {
        return;
    }
    let mut seen: BTreeSet<&'static str> = BTreeSet::new();
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let c = ctx("F");
    let stat = fixture("hello-aarch64-static");
    let dynamic = fixture("hello-aarch64-dynamic");
    let mut check = |rep: &Report, want: &str| {
        let got = ids(rep);
        assert!(got.contains(want), "expected {want}, got {got:?}");
        seen.extend(got);
    };

    // Files that are not programs.
    put(r, "/empty", b"", 0o755);
    check(&diagnose(r, "/empty", &c), "empty-file");
    put(
        r,
        "/mac",
        b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01\x00\x00\x00\x00\x02\x00\x00\x00",
        0o755,
    );
    check(&diagnose(r, "/mac", &c), "macho-binary");
    put(r, "/win.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", 0o755);
    check(&diagnose(r, "/win.exe", &c), "pe-binary");
    put(r, "/notes.txt", b"just some words\n", 0o755);
    check(&diagnose(r, "/notes.txt", &c), "text-file");
    put(r, "/blob", &[0u8, 1, 2, 3, 0xfe, 0xff, 0x10], 0o755);
    check(&diagnose(r, "/blob", &c), "unknown-format");
    put(r, "/trunc", &stat[..100], 0o755);
    check(&diagnose(r, "/trunc", &c), "elf-corrupt");
    put(r, "/noexec", &stat, 0o644);
    check(&diagnose(r, "/noexec", &c), "not-executable");
    check(&diagnose(r, "/does/not/exist", &c), "not-found");
    nix::unistd::mkfifo(
        &r.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o755),
    )
    .unwrap();
    check(&diagnose(r, "/fifo", &c), "not-regular-file");
    let obj = r.join("obj.o");
    assert!(gcc(&obj, "int f(void){return 1;}\n", &["-c"]));
    check(
        &diagnose(Path::new("/"), &obj.display().to_string(), &c),
        "elf-not-executable",
    );
    let mut bsd = stat.clone();
    bsd[7] = 9; // ELFOSABI_FREEBSD
    put(r, "/bsd", &bsd, 0o755);
    check(&diagnose(r, "/bsd", &c), "elf-foreign-os");

    // Scripts.
    put(r, "/bin/hello", &stat, 0o755);
    put(r, "/s1", b"#!/bin/hello -x\n", 0o755);
    check(&diagnose(r, "/s1", &c), "script");
    put(r, "/s2", b"#!/usr/bin/python3\nprint(1)\n", 0o755);
    check(&diagnose(r, "/s2", &c), "script-interpreter-missing");
    for i in 0..6 {
        put(
            r,
            &format!("/n{i}"),
            format!("#!/n{}\n", i + 1).as_bytes(),
            0o755,
        );
    }
    check(&diagnose(r, "/n0", &c), "script-nesting");

    // Handler and kernel states.
    check(&diagnose(Path::new("/"), "/bin/true", &c), "native");
    let mut unmounted = ctx("F");
    unmounted.snapshot.mounted = false;
    check(&diagnose(r, "/bin/hello", &unmounted), "binfmt-not-mounted");
    let mut off = ctx("F");
    off.snapshot.enabled = false;
    check(&diagnose(r, "/bin/hello", &off), "binfmt-disabled");
    check(&diagnose(r, "/bin/hello", &ctx_with(vec![])), "no-handler");
    let mut disabled = ctx("F");
    disabled.snapshot.entries[0].enabled = false;
    check(&diagnose(r, "/bin/hello", &disabled), "handler-disabled");
    let cat = Catalog::embedded().unwrap();
    let two = ctx_with(vec![
        entry(
            &cat,
            "qemu-aarch64",
            "newer-aarch64",
            "/usr/bin/qemu-aarch64-static",
            "F",
        ),
        entry(
            &cat,
            "qemu-aarch64",
            "qemu-aarch64",
            "/usr/bin/qemu-aarch64-static",
            "F",
        ),
    ]);
    check(&diagnose(r, "/bin/hello", &two), "handler-shadowed");
    let mut unreadable = ctx("F");
    unreadable
        .snapshot
        .unreadable
        .push(("weird".into(), "cannot parse".into()));
    check(
        &diagnose(r, "/bin/hello", &unreadable),
        "handler-unreadable",
    );
    check(
        &diagnose(
            r,
            "/bin/hello",
            &ctx_with(vec![entry(
                &cat,
                "qemu-aarch64",
                "q",
                "/nonexistent/qemu",
                "F",
            )]),
        ),
        "interpreter-missing",
    );
    put(r, "/host-qemu", b"\x7fELF", 0o644);
    let not_exec = r.join("host-qemu").display().to_string();
    check(
        &diagnose(
            r,
            "/bin/hello",
            &ctx_with(vec![entry(&cat, "qemu-aarch64", "q", &not_exec, "F")]),
        ),
        "interpreter-not-executable",
    );
    check(
        &diagnose(
            r,
            "/bin/hello",
            &ctx_with(vec![entry(&cat, "qemu-aarch64", "q", "/bin/true", "F")]),
        ),
        "interpreter-dynamic",
    );
    check(
        &diagnose(r, "/bin/hello", &ctx("")),
        "handler-needs-fix-binary",
    );
    put(r, "/bin/su", &stat, 0o4755);
    check(&diagnose(r, "/bin/su", &c), "setuid-needs-credentials");
    put(r, "/bin/busybox", &stat, 0o755);
    check(&diagnose(r, "/bin/busybox", &c), "argv0-needs-preserve");

    // Loader and libraries.
    put(r, "/bin/dyn", &dynamic, 0o755);
    check(&diagnose(r, "/bin/dyn", &c), "loader-missing");
    check(&diagnose(r, "/bin/dyn", &c), "library-missing");
    let musl = tempfile::tempdir().unwrap();
    put(musl.path(), "/bin/dyn", &dynamic, 0o755);
    put(
        musl.path(),
        "/lib/ld-musl-aarch64.so.1",
        &std::fs::read("/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1").unwrap(),
        0o755,
    );
    check(
        &diagnose(musl.path(), "/bin/dyn", &c),
        "loader-libc-mismatch",
    );
    let wrong = tempfile::tempdir().unwrap();
    put(wrong.path(), "/bin/dyn", &dynamic, 0o755);
    put(
        wrong.path(),
        "/lib/ld-linux-aarch64.so.1",
        &std::fs::read("/bin/true").unwrap(),
        0o755,
    );
    put(
        wrong.path(),
        "/lib/aarch64-linux-gnu/libc.so.6",
        &std::fs::read("/bin/true").unwrap(),
        0o755,
    );
    let rep = diagnose(wrong.path(), "/bin/dyn", &c);
    check(&rep, "loader-wrong-arch");
    check(&rep, "library-wrong-arch");

    // CPU: ISA level and features, page size, jemalloc, known defects.
    let v4 = r.join("v4");
    assert!(gcc(
        &v4,
        "int main(void){return 0;}\n",
        &["-march=x86-64-v4", "-Wl,-z,x86-64-v4"]
    ));
    let mut v2_host = ctx("F");
    v2_host.host.x86_64_level = Some(2);
    check(
        &diagnose(Path::new("/"), &v4.display().to_string(), &v2_host),
        "isa-level-unsupported",
    );
    check(
        &diagnose(Path::new("/"), &v4.display().to_string(), &c),
        "isa-features",
    );
    let small = r.join("small-pages");
    assert!(gcc(
        &small,
        "int main(void){return 0;}\n",
        &["-Wl,-z,max-page-size=4096", "-Wl,-z,common-page-size=4096"]
    ));
    let mut big_pages = ctx("F");
    big_pages.host.page_size = 65536;
    check(
        &diagnose(Path::new("/"), &small.display().to_string(), &big_pages),
        "page-align-too-small",
    );
    let je = r.join("libjemalloc.so.2");
    assert!(gcc(
        &je,
        "void je_fake(void){}\n",
        &["-shared", "-fPIC", "-Wl,-soname,libjemalloc.so.2"]
    ));
    let jeuser = r.join("je-user");
    let rpath = format!("-Wl,-rpath,{}", r.display());
    assert!(gcc(
        &jeuser,
        "void je_fake(void);int main(void){je_fake();return 0;}\n",
        &[
            &format!("-L{}", r.display()),
            "-l:libjemalloc.so.2",
            &rpath,
            "-Wl,-z,max-page-size=65536"
        ]
    ));
    check(
        &diagnose(Path::new("/"), &jeuser.display().to_string(), &big_pages),
        "jemalloc-page-size",
    );
    if Path::new("/usr/bin/qemu-aarch64-static").exists() {
        put(
            r,
            "/bin/goapp",
            &make_go_like(stat.clone(), "go1.23.1"),
            0o755,
        );
        let rep = diagnose(r, "/bin/goapp", &c);
        assert_eq!(
            rep.subjects[0]
                .identity
                .as_ref()
                .unwrap()
                .go_version
                .as_deref(),
            Some("go1.23.1")
        );
        check(&rep, "known-emulator-defect");
    }

    // --run outcomes on host programs (root /).
    let run = |path: &str, args: &[&str], timeout: u64| {
        let mut a = DoctorArgs::for_path(path);
        a.run = true;
        a.timeout = timeout;
        a.args = args.iter().map(std::ffi::OsString::from).collect();
        doctor::execute(&a, &ctx("F")).unwrap()
    };
    check(&run("/bin/true", &[], 5), "run-ok");
    check(&run("/bin/false", &[], 5), "run-failed");
    check(&run("/bin/sh", &["-c", "kill -SEGV $$"], 5), "run-signaled");
    check(&run("/bin/sleep", &["30"], 1), "run-hang-blocked");
    check(
        &run("/bin/sh", &["-c", "while :; do :; done"], 1),
        "run-hang-spinning",
    );
    // A foreign program while this process has no working handler: ENOEXEC, or a wrong
    // loader when a handler exists; either way it cannot start or fails.
    let hello = common::cross_bins()
        .join("hello-aarch64-static")
        .display()
        .to_string();
    let rep = run(&hello, &[], 5);
    if binfmt_works() {
        seen.extend(ids(&rep));
    } else {
        check(&rep, "run-exec-failed");
    }

    // A symlink inside the root to a program is followed inside it.
    symlink("/bin/hello", r.join("link")).unwrap();
    assert!(diagnose(r, "/link", &c).subjects[0].findings.is_empty());

    let all: BTreeSet<&str> = FindingId::ALL.iter().map(|i| i.as_str()).collect();
    let mut missing: Vec<&&str> = all.difference(&seen).collect();
    if binfmt_works() {
        missing.retain(|m| **m != "run-exec-failed");
    }
    if !Path::new("/usr/bin/qemu-aarch64-static").exists() {
        missing.retain(|m| **m != "known-emulator-defect");
    }
    assert!(
        missing.is_empty(),
        "finding ids never triggered: {missing:?}"
    );
}

/// Whether this process can already execute a foreign program (a handler is active).
fn binfmt_works() -> bool {
    Command::new(common::cross_bins().join("hello-aarch64-static"))
        .output()
        .is_ok_and(|o| o.status.success())
}
