//! doctor on real cross-compiled binaries and a real Debian arm64 root, through the library API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use binfmtd::catalog::Catalog;
use binfmtd::doctor::{self, DoctorArgs, DoctorContext, HostFacts, Report};
use binfmtd::kernel::Snapshot;
use binfmtd::model::Entry;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

const QEMU_AARCH64: &str = "/usr/bin/qemu-aarch64-static";

/// A context with a qemu-aarch64 entry registered with `flags` (or none), on an x86-64 host.
pub fn ctx(flags: Option<&str>) -> DoctorContext {
    let catalog = Catalog::embedded().unwrap();
    let mut entries = vec![];
    if let Some(flags) = flags {
        let h = catalog.get("qemu-aarch64").unwrap();
        let rule = h.rule(
            Path::new(QEMU_AARCH64),
            binfmtd::model::Flags::parse(flags).unwrap(),
        );
        entries.push(Entry {
            name: rule.name,
            enabled: true,
            interpreter: rule.interpreter,
            flags: rule.flags.effective(),
            matcher: rule.matcher,
        });
    }
    DoctorContext {
        snapshot: Snapshot {
            path: "/proc/sys/fs/binfmt_misc".into(),
            mounted: true,
            enabled: true,
            entries,
            unreadable: vec![],
        },
        catalog,
        host: HostFacts {
            arch: "x86_64".into(),
            native: vec!["x86_64".into(), "i386".into()],
            page_size: 4096,
            x86_64_level: Some(3),
            kernel: None,
        },
        host_root: PathBuf::from("/"),
        owned: Default::default(),
    }
}

fn args(path: &str, root: &Path) -> DoctorArgs {
    let mut a = DoctorArgs::for_path(path);
    a.root = root.to_path_buf();
    a
}

fn ids(r: &Report) -> Vec<&'static str> {
    r.subjects
        .iter()
        .flat_map(|s| s.findings.iter())
        .map(|f| f.id.as_str())
        .collect()
}

/// A root directory holding copies of the given fixture binaries under /bin.
fn root_with(bins: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    for b in bins {
        std::fs::copy(common::cross_bins().join(b), dir.path().join("bin").join(b)).unwrap();
    }
    dir
}

fn have_cross() -> bool {
    common::require_tool("aarch64-linux-gnu-gcc")
        && common::require_tool("arm-linux-gnueabihf-gcc")
        && common::require_tool("riscv64-linux-gnu-gcc")
}

#[test]
fn seed_case_names_the_missing_loader_and_exits_1() {
    if !have_cross() {
        return;
    }
    let root = root_with(&["hello-aarch64-dynamic"]);
    let r = doctor::execute(
        &args("/bin/hello-aarch64-dynamic", root.path()),
        &ctx(Some("F")),
    )
    .unwrap();
    let f = r.subjects[0]
        .findings
        .iter()
        .find(|f| f.id.as_str() == "loader-missing")
        .expect("loader-missing");
    assert!(
        f.message.contains("/lib/ld-linux-aarch64.so.1"),
        "{}",
        f.message
    );
    assert!(f
        .evidence
        .iter()
        .any(|e| e.value == "/lib/ld-linux-aarch64.so.1"));
    assert!(ids(&r).contains(&"library-missing"), "{:?}", ids(&r));
    assert_eq!(r.exit_code(), 1);
    let id = r.subjects[0].identity.as_ref().unwrap();
    assert_eq!(id.platform.as_deref(), Some("linux/arm64"));
    assert!(!id.native);
    assert_eq!(r.subjects[0].handler.as_deref(), Some("qemu-aarch64"));
    let text = doctor::render_human(&r, false);
    assert!(
        text.contains("[loader-missing]") && text.contains("fix:"),
        "{text}"
    );
    assert!(!text.contains('\x1b'));
}

#[test]
fn seed_case_in_the_real_arm64_root_is_clean() {
    if !have_cross() || !common::require_tool("debootstrap") {
        return;
    }
    let root = common::arm64_root();
    // /usr/bin/dpkg is a dynamic aarch64 program with several libraries.
    let r = doctor::execute(&args("/usr/bin/dpkg", root), &ctx(Some("F"))).unwrap();
    assert!(ids(&r).is_empty(), "{:?}", r.subjects[0].findings);
    assert_eq!(r.exit_code(), 0);
    let id = r.subjects[0].identity.as_ref().unwrap();
    assert_eq!(
        id.interpreter.as_deref(),
        Some("/lib/ld-linux-aarch64.so.1")
    );
    assert!(id.needed.iter().any(|n| n == "libc.so.6"));
}

#[test]
fn identity_of_every_fixture() {
    if !have_cross() {
        return;
    }
    let bins = [
        "hello-aarch64-static",
        "hello-aarch64-dynamic",
        "hello-armhf-dynamic",
        "hello-riscv64-static",
        "hello-riscv64-dynamic",
    ];
    let root = root_with(&bins);
    let table = [
        (
            "hello-aarch64-static",
            "AArch64",
            None,
            "linux/arm64",
            "static",
        ),
        (
            "hello-armhf-dynamic",
            "ARM",
            Some("EABI5 hard-float"),
            "linux/arm/v7",
            "dynamic",
        ),
        (
            "hello-riscv64-static",
            "RISC-V",
            Some("lp64d, RVC"),
            "linux/riscv64",
            "static",
        ),
        (
            "hello-riscv64-dynamic",
            "RISC-V",
            Some("lp64d, RVC"),
            "linux/riscv64",
            "dynamic",
        ),
    ];
    for (bin, machine, abi, platform, linkage) in table {
        let r =
            doctor::execute(&args(&format!("/bin/{bin}"), root.path()), &ctx(Some("F"))).unwrap();
        let id = r.subjects[0].identity.as_ref().unwrap();
        assert_eq!(id.machine, machine, "{bin}");
        assert_eq!(id.abi.as_deref(), abi, "{bin}");
        assert_eq!(id.platform.as_deref(), Some(platform), "{bin}");
        assert_eq!(serde_json::to_value(id.linkage).unwrap(), linkage, "{bin}");
    }
    // The static aarch64 program is fine with an F handler; riscv64 has no handler here.
    let r = doctor::execute(
        &args("/bin/hello-aarch64-static", root.path()),
        &ctx(Some("F")),
    )
    .unwrap();
    assert!(ids(&r).is_empty(), "{:?}", ids(&r));
    let r = doctor::execute(
        &args("/bin/hello-riscv64-static", root.path()),
        &ctx(Some("F")),
    )
    .unwrap();
    assert_eq!(ids(&r), ["no-handler"]);
    assert!(r.subjects[0].findings[0]
        .fix
        .as_deref()
        .unwrap()
        .contains("binfmtd install linux/riscv64"));
}

#[test]
fn armhf_binary_in_arm64_root_names_what_the_root_has() {
    if !have_cross() || !common::require_tool("debootstrap") {
        return;
    }
    let arm64 = common::arm64_root();
    // A small root with the arm64 loader and libc of the Debian root, plus an armhf program.
    let root = root_with(&["hello-armhf-dynamic"]);
    std::fs::create_dir_all(root.path().join("lib/arm-linux-gnueabihf")).unwrap();
    std::fs::copy(
        arm64.join("lib/ld-linux-aarch64.so.1"),
        root.path().join("lib/ld-linux-aarch64.so.1"),
    )
    .unwrap();
    std::fs::copy(
        arm64.join("lib/aarch64-linux-gnu/libc.so.6"),
        root.path().join("lib/arm-linux-gnueabihf/libc.so.6"),
    )
    .unwrap();
    let mut c = ctx(Some("F"));
    let arm = c.catalog.get("qemu-arm").unwrap().rule(
        Path::new("/usr/bin/qemu-arm-static"),
        binfmtd::model::Flags::parse("F").unwrap(),
    );
    c.snapshot.entries.push(Entry {
        name: arm.name,
        enabled: true,
        interpreter: arm.interpreter,
        flags: arm.flags,
        matcher: arm.matcher,
    });
    let r = doctor::execute(&args("/bin/hello-armhf-dynamic", root.path()), &c).unwrap();
    let f = &r.subjects[0].findings;
    let missing = f
        .iter()
        .find(|f| f.id.as_str() == "loader-missing")
        .expect("loader-missing");
    assert!(
        missing.message.contains("/lib/ld-linux-armhf.so.3"),
        "{}",
        missing.message
    );
    let has = missing
        .evidence
        .iter()
        .find(|e| e.label == "root has")
        .unwrap();
    assert!(
        has.value.contains("/lib/ld-linux-aarch64.so.1") && has.value.contains("AArch64"),
        "{}",
        has.value
    );
    // libc.so.6 exists in the armhf directory, but is AArch64: the loader would skip it.
    let wrong = f
        .iter()
        .find(|f| f.id.as_str() == "library-wrong-arch")
        .expect("library-wrong-arch");
    assert!(wrong.message.contains("libc.so.6"), "{}", wrong.message);
    // Without any entry the same Debian program has no handler.
    let r = doctor::execute(&args("/usr/bin/dpkg", arm64), &ctx(None)).unwrap();
    assert_eq!(ids(&r), ["no-handler"]);
}

#[test]
fn all_scan_of_the_arm64_root() {
    if !common::require_tool("debootstrap") {
        return;
    }
    let root = common::arm64_root();
    let mut a = DoctorArgs::for_path("x");
    a.path = None;
    a.all = true;
    a.root = root.to_path_buf();
    let r = doctor::execute(&a, &ctx(Some("OCF"))).unwrap();
    println!("{}", doctor::render_human(&r, false));
    assert!(r.summary.elf > 100, "{:?}", r.summary);
    assert_eq!(
        r.summary.with_errors,
        0,
        "{}",
        doctor::render_human(&r, false)
    );
    let r = doctor::execute(&a, &ctx(None)).unwrap();
    let g = r
        .summary
        .groups
        .iter()
        .find(|g| g.id.as_str() == "no-handler")
        .unwrap();
    assert!(g.count > 50);
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn confinement_never_reads_host_files() {
    if !have_cross() {
        return;
    }
    // The host has the aarch64 cross loader and libc under /usr/aarch64-linux-gnu. Links in the
    // image that point there must resolve inside the image, where nothing exists.
    let host_sysroot = Path::new("/usr/aarch64-linux-gnu/lib");
    assert!(host_sysroot.join("ld-linux-aarch64.so.1").exists());
    let root = root_with(&["hello-aarch64-dynamic"]);
    let r = root.path();
    std::fs::create_dir_all(r.join("lib")).unwrap();
    symlink(
        host_sysroot.join("ld-linux-aarch64.so.1"),
        r.join("lib/ld-linux-aarch64.so.1"),
    )
    .unwrap();
    symlink(
        "../../../../../../../../usr/aarch64-linux-gnu/lib",
        r.join("lib/aarch64-linux-gnu"),
    )
    .unwrap();
    std::fs::create_dir_all(r.join("usr/lib")).unwrap();
    symlink(host_sysroot, r.join("usr/lib/aarch64-linux-gnu")).unwrap();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(
        r.join("etc/ld.so.conf"),
        "include /proc/self/root/etc/ld.so.conf.d/*.conf\n/../../usr/aarch64-linux-gnu/lib\n",
    )
    .unwrap();
    symlink(
        "/proc/self/root/usr/bin/qemu-aarch64-static",
        r.join("bin/escape"),
    )
    .unwrap();
    symlink("loop2", r.join("bin/loop1")).unwrap();
    symlink("loop1", r.join("bin/loop2")).unwrap();
    let rep = doctor::execute(&args("/bin/hello-aarch64-dynamic", r), &ctx(Some("F"))).unwrap();
    let got = ids(&rep);
    assert!(got.contains(&"loader-missing"), "{got:?}");
    assert!(got.contains(&"library-missing"), "{got:?}");
    let json = serde_json::to_string(&rep).unwrap();
    assert!(
        !json.contains("\"/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1\""),
        "{json}"
    );
    for p in ["/bin/escape", "/bin/loop1"] {
        let rep = doctor::execute(&args(p, r), &ctx(Some("F"))).unwrap();
        assert_eq!(ids(&rep), ["not-found"], "{p}");
    }
    let loop_msg = &doctor::execute(&args("/bin/loop1", r), &ctx(Some("F")))
        .unwrap()
        .subjects[0]
        .findings[0]
        .message;
    assert!(loop_msg.contains("symbolic links"), "{loop_msg}");
}

#[test]
fn corrupt_corpus_never_panics_and_stays_fast() {
    if !have_cross() {
        return;
    }
    let full = std::fs::read(common::cross_bins().join("hello-aarch64-dynamic")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<Vec<u8>> = vec![];
    for len in [
        0usize,
        1,
        4,
        16,
        20,
        52,
        63,
        64,
        65,
        100,
        200,
        300,
        1000,
        4096,
        full.len() / 2,
        full.len() - 1,
    ] {
        cases.push(full[..len.min(full.len())].to_vec());
    }
    let mut seed = 0x1234_5678u64;
    for _ in 0..40 {
        let mut b = full.clone();
        for _ in 0..8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % 256.min(b.len());
            b[i] = (seed >> 32) as u8;
        }
        cases.push(b);
    }
    // Header claims huge tables.
    let mut huge = full.clone();
    huge[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
    cases.push(huge);
    let c = ctx(Some("F"));
    for (i, bytes) in cases.iter().enumerate() {
        let p = dir.path().join(format!("c{i}"));
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let start = std::time::Instant::now();
        let r = doctor::execute(&args(&format!("/c{i}"), dir.path()), &c).unwrap();
        assert!(
            start.elapsed().as_secs() < 3,
            "case {i} took {:?}",
            start.elapsed()
        );
        let _ = doctor::render_human(&r, true);
        let _ = serde_json::to_string(&r).unwrap();
    }
    let r = doctor::execute(&args("/c3", dir.path()), &c).unwrap();
    assert_eq!(ids(&r), ["elf-corrupt"]);
    let r = doctor::execute(&args("/c0", dir.path()), &c).unwrap();
    assert_eq!(ids(&r), ["empty-file"]);
}
