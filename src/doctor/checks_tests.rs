//! Table tests of the pure checks: each case builds facts and asserts the finding ids.

use super::*;
use crate::doctor::context::HostFacts;
use crate::doctor::elf;
use crate::doctor::inspect::{InterpInfo, Loaded, LoaderState, Subject};
use crate::doctor::libs::{LibReport, Libc, Unresolved};
use crate::doctor::rootfs::{FileType, Meta};
use crate::doctor::sniff;
use crate::doctor::testelf::{build, Spec};
use crate::kernel::codec::decode;
use std::sync::Arc;

const AARCH64: &str = r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:";
const X86_64: &str = r":qemu-x86_64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00:\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-x86_64-static:";

fn entry(line: &str, name: &str, flags: &str, enabled: bool) -> Entry {
    let mut r = decode(line).unwrap();
    r.name = name.into();
    r.flags = crate::model::Flags::parse(flags).unwrap();
    Entry {
        name: r.name,
        enabled,
        interpreter: r.interpreter,
        flags: r.flags.effective(),
        matcher: r.matcher,
    }
}

fn snapshot(entries: Vec<Entry>) -> Snapshot {
    Snapshot {
        path: "/proc/sys/fs/binfmt_misc".into(),
        mounted: true,
        enabled: true,
        entries,
        unreadable: vec![],
    }
}

fn meta(mode: u32) -> Meta {
    Meta {
        kind: FileType::Regular,
        mode,
        size: 1000,
        dev: 1,
        ino: 1,
        nlink: 1,
    }
}

fn subject(path: &str, bytes: &[u8], mode: u32) -> Subject {
    let kind = sniff::classify(bytes);
    let elf = (kind == sniff::FileKind::Elf).then(|| {
        elf::parse(bytes).map(|facts| {
            Arc::new(Loaded {
                real_path: path.into(),
                meta: meta(mode),
                facts,
            })
        })
    });
    let loadable = (kind == sniff::FileKind::Elf)
        .then(|| crate::doctor::inspect::loadability(bytes, &bytes[..bytes.len().min(256)]));
    Subject {
        path: path.into(),
        real_path: Some(path.into()),
        meta: Some(meta(mode)),
        open_error: None,
        header: bytes[..bytes.len().min(256)].to_vec(),
        kind,
        elf,
        loader: None,
        libs: None,
        aliases: 0,
        as_program: true,
        loadable,
    }
}

fn interp(tr: Translator, version: Option<&str>) -> InterpInfo {
    InterpInfo {
        looked_up_in: "host",
        exists: true,
        executable: true,
        dynamic: Some(false),
        translator: Some(tr),
        version: version.map(str::to_string),
        error: None,
    }
}

fn host() -> HostFacts {
    HostFacts {
        arch: "x86_64".into(),
        native: vec!["x86_64".into(), "i386".into()],
        page_size: 4096,
        x86_64_level: Some(3),
        kernel: None,
    }
}

struct Case {
    s: Subject,
    snap: Snapshot,
    interps: BTreeMap<String, InterpInfo>,
    host: HostFacts,
    root_is_host: bool,
    owned: std::collections::BTreeSet<String>,
}

impl Case {
    fn new(s: Subject) -> Self {
        let mut interps = BTreeMap::new();
        interps.insert(
            "qemu-aarch64".to_string(),
            interp(Translator::Qemu, Some("7.2.22")),
        );
        Case {
            s,
            snap: snapshot(vec![entry(AARCH64, "qemu-aarch64", "F", true)]),
            interps,
            host: host(),
            root_is_host: true,
            owned: Default::default(),
        }
    }
    fn findings(&self) -> Vec<Finding> {
        let v = View {
            snapshot: &self.snap,
            host: &self.host,
            interps: &self.interps,
            root_loaders: &[],
            root_is_host: self.root_is_host,
            root_name: "/r",
            owned: &self.owned,
        };
        check(&self.s, &v)
    }
    fn ids(&self) -> Vec<&'static str> {
        self.findings().iter().map(|f| f.id.as_str()).collect()
    }
}

fn aarch64_static() -> Vec<u8> {
    build(&Spec::new(183))
}

#[test]
fn handler_states() {
    let ok = Case::new(subject("/bin/app", &aarch64_static(), 0o755));
    assert!(ok.ids().is_empty(), "{:?}", ok.ids());

    let mut c = Case::new(subject("/bin/app", &aarch64_static(), 0o755));
    c.snap.mounted = false;
    assert_eq!(c.ids(), ["binfmt-not-mounted"]);

    let mut c = Case::new(subject("/bin/app", &aarch64_static(), 0o755));
    c.snap.enabled = false;
    assert_eq!(c.ids(), ["binfmt-disabled"]);

    let mut c = Case::new(subject("/bin/app", &aarch64_static(), 0o755));
    c.snap.entries.clear();
    assert_eq!(c.ids(), ["no-handler"]);

    let mut c = Case::new(subject("/bin/app", &aarch64_static(), 0o755));
    c.snap.entries[0].enabled = false;
    assert_eq!(c.ids(), ["handler-disabled"]);

    let mut c = Case::new(subject("/bin/app", &aarch64_static(), 0o755));
    c.snap.unreadable.push(("broken".into(), "parse".into()));
    assert_eq!(c.ids(), ["handler-unreadable"]);

    let mut c = Case::new(subject("/bin/app", &aarch64_static(), 0o755));
    c.snap
        .entries
        .insert(0, entry(AARCH64, "other-aarch64", "F", true));
    c.interps
        .insert("other-aarch64".into(), interp(Translator::Qemu, None));
    assert_eq!(c.ids(), ["handler-shadowed"]);
    let v = View {
        snapshot: &c.snap,
        host: &c.host,
        interps: &c.interps,
        root_loaders: &[],
        root_is_host: true,
        root_name: "/",
        owned: &c.owned,
    };
    let f = check(&c.s, &v);
    assert!(
        f[0].message.contains("\"other-aarch64\" wins"),
        "{}",
        f[0].message
    );
}

#[test]
fn interpreter_states() {
    let mut c = Case::new(subject("/bin/app", &aarch64_static(), 0o755));
    c.interps.get_mut("qemu-aarch64").unwrap().exists = false;
    assert_eq!(c.ids(), ["interpreter-missing"]);

    let mut c = Case::new(subject("/bin/app", &aarch64_static(), 0o755));
    c.interps.get_mut("qemu-aarch64").unwrap().executable = false;
    assert_eq!(c.ids(), ["interpreter-not-executable"]);

    let mut c = Case::new(subject("/bin/app", &aarch64_static(), 0o755));
    c.interps.get_mut("qemu-aarch64").unwrap().dynamic = Some(true);
    c.root_is_host = false;
    assert_eq!(c.ids(), ["interpreter-dynamic"]);

    let mut c = Case::new(subject("/bin/app", &aarch64_static(), 0o755));
    c.snap.entries[0].flags = crate::model::Flags::default();
    let i = c.interps.get_mut("qemu-aarch64").unwrap();
    i.looked_up_in = "root";
    i.exists = false;
    c.root_is_host = false;
    assert_eq!(c.ids(), ["handler-needs-fix-binary"]);
}

/// Fixes that re-register an entry add `--force` only when binfmtd does not own it: its own
/// entries are replaced without it.
#[test]
fn fixes_force_only_entries_binfmtd_does_not_own() {
    let fix = |path: &str, mode: u32, owned: bool, id: Id| {
        let mut c = Case::new(subject(path, &aarch64_static(), mode));
        if owned {
            c.owned.insert("qemu-aarch64".into());
        }
        let f = c.findings();
        f.iter().find(|f| f.id == id).unwrap().fix.clone().unwrap()
    };
    let table = [
        (
            "/bin/busybox",
            0o755,
            Id::Argv0NeedsPreserve,
            "--preserve-argv0",
        ),
        (
            "/bin/sudo",
            0o4755,
            Id::SetuidNeedsCredentials,
            "--credentials",
        ),
    ];
    for (path, mode, id, option) in table {
        let mine = fix(path, mode, true, id);
        assert!(
            mine.contains(&format!("binfmtd install qemu-aarch64 {option}")),
            "{mine}"
        );
        assert!(!mine.contains("--force"), "{mine}");
        let theirs = fix(path, mode, false, id);
        assert!(
            theirs.contains(&format!("binfmtd install qemu-aarch64 {option} --force")),
            "{theirs}"
        );
    }
    let mut c = Case::new(subject("/bin/app", &aarch64_static(), 0o755));
    c.interps.get_mut("qemu-aarch64").unwrap().exists = false;
    c.owned.insert("qemu-aarch64".into());
    let f = c.findings();
    let missing = f.iter().find(|f| f.id == Id::InterpreterMissing).unwrap();
    assert!(
        missing
            .fix
            .as_deref()
            .unwrap()
            .ends_with("binfmtd install qemu-aarch64"),
        "{missing:?}"
    );
}

/// The fix for a setuid program under an entry without C states what C costs.
#[test]
fn setuid_fix_states_the_risk_of_credentials() {
    let c = Case::new(subject("/bin/sudo", &aarch64_static(), 0o4755));
    let f = c.findings();
    let f = f
        .iter()
        .find(|f| f.id == Id::SetuidNeedsCredentials)
        .unwrap();
    let fix = f.fix.as_deref().unwrap();
    assert!(fix.contains("--credentials"), "{fix}");
    assert!(fix.contains("docs/security.md"), "{fix}");
    assert!(fix.contains("trusted with root"), "{fix}");
    let risk = f.evidence.iter().find(|e| e.label == "risk of C").unwrap();
    assert!(risk.value.contains("as root"), "{}", risk.value);
    assert!(risk.value.contains("QEMU_"), "{}", risk.value);
}

#[test]
fn flags_and_native() {
    let c = Case::new(subject("/bin/sudo", &aarch64_static(), 0o4755));
    assert_eq!(c.ids(), ["setuid-needs-credentials"]);
    let c = Case::new(subject("/bin/busybox", &aarch64_static(), 0o755));
    assert_eq!(c.ids(), ["argv0-needs-preserve"]);
    let mut c = Case::new(subject("/bin/sudo", &aarch64_static(), 0o4755));
    c.snap.entries[0] = entry(AARCH64, "qemu-aarch64", "POCF", true);
    assert!(c.ids().is_empty());
    let c = Case::new(subject("/bin/true", &build(&Spec::new(62)), 0o755));
    assert_eq!(c.ids(), ["native"]);
    let c = Case::new(subject("/bin/app", &aarch64_static(), 0o644));
    assert_eq!(c.ids(), ["not-executable"]);
}

#[test]
fn non_elf_kinds() {
    for (bytes, id) in [
        (&b""[..], "empty-file"),
        (b"\xcf\xfa\xed\xfe\x07\x00\x00\x01", "macho-binary"),
        (b"MZ\x90\x00", "pe-binary"),
        (b"echo hi\n", "text-file"),
        (b"\x00\x01\x02", "unknown-format"),
        (b"\x7fELF\x02\x01\x01", "elf-corrupt"),
    ] {
        assert_eq!(
            Case::new(subject("/x", bytes, 0o755)).ids(),
            [id],
            "{bytes:?}"
        );
    }
    let mut rel = Spec::new(183);
    rel.e_type = 1;
    assert_eq!(
        Case::new(subject("/x.o", &build(&rel), 0o755)).ids(),
        ["elf-not-executable"]
    );
    let mut bsd = Spec::new(62);
    bsd.osabi = 9;
    assert_eq!(
        Case::new(subject("/x", &build(&bsd), 0o755)).ids(),
        ["elf-foreign-os"]
    );
}

#[test]
fn loader_and_libraries() {
    let dynamic = build(&Spec::aarch64_dynamic());
    let mut c = Case::new(subject("/bin/app", &dynamic, 0o755));
    c.s.loader = Some(LoaderState::Missing {
        reason: "does not exist".into(),
    });
    c.s.libs = Some(LibReport {
        found: vec![],
        unresolved: vec![
            Unresolved {
                name: "libc.so.6".into(),
                needed_by: "/bin/app".into(),
                searched: vec!["/lib".into()],
                wrong_arch: vec![],
            },
            Unresolved {
                name: "libz.so.1".into(),
                needed_by: "/bin/app".into(),
                searched: vec![],
                wrong_arch: vec![("/lib/libz.so.1".into(), "x86".into())],
            },
        ],
        truncated: false,
    });
    let musl = [RootLoader {
        path: "/lib/ld-musl-aarch64.so.1".into(),
        libc: Libc::Musl,
        description: "64-bit little-endian AArch64".into(),
    }];
    let v = View {
        snapshot: &c.snap,
        host: &c.host,
        interps: &c.interps,
        root_loaders: &musl,
        root_is_host: false,
        root_name: "/r",
        owned: &c.owned,
    };
    let got = check(&c.s, &v);
    let ids: Vec<&str> = got.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "loader-missing",
            "loader-libc-mismatch",
            "library-missing",
            "library-wrong-arch"
        ]
    );
    assert!(got[0].message.contains("/lib/ld-linux-aarch64.so.1"));
    assert!(got[1].message.contains("musl"));

    c.s.libs = None;
    c.s.loader = Some(LoaderState::Present {
        real_path: "/lib/x".into(),
        description: "x86-64".into(),
        compatible: false,
        libc: Libc::Glibc,
        x86_isa_level: None,
    });
    assert_eq!(c.ids(), ["loader-wrong-arch"]);
}

#[test]
fn cpu_level_page_size_defects() {
    let mut v3 = Spec::new(62);
    v3.x86_isa_needed = Some(0b111);
    let bytes = build(&v3);
    // Native on a v2 CPU.
    let mut c = Case::new(subject("/bin/app", &bytes, 0o755));
    c.host.x86_64_level = Some(2);
    assert_eq!(c.ids(), ["native", "isa-level-unsupported"]);
    // Foreign on an arm64 host under Rosetta.
    let mut c = Case::new(subject("/bin/app", &bytes, 0o755));
    c.host = HostFacts {
        arch: "aarch64".into(),
        native: vec!["aarch64".into()],
        page_size: 16384,
        x86_64_level: None,
        kernel: None,
    };
    c.snap = snapshot(vec![entry(X86_64, "rosetta", "OCF", true)]);
    c.interps
        .insert("rosetta".into(), interp(Translator::Rosetta, None));
    // The known-defects row for x86-64-v3 under Rosetta agrees.
    assert_eq!(
        c.ids(),
        [
            "isa-level-unsupported",
            "page-align-too-small",
            "known-emulator-defect"
        ]
    );
    // jemalloc + Go defect under qemu 7.2.
    let mut s = Spec::aarch64_dynamic();
    s.needed.push("libjemalloc.so.2".into());
    s.go_version = Some("go1.23.1".into());
    s.align = 0x10000;
    let mut c = Case::new(subject("/bin/app", &build(&s), 0o755));
    c.host.page_size = 65536;
    c.s.loader = Some(LoaderState::Present {
        real_path: "/lib/ld".into(),
        description: String::new(),
        compatible: true,
        libc: Libc::Glibc,
        x86_isa_level: None,
    });
    assert_eq!(
        c.ids(),
        [
            "jemalloc-page-size",
            "known-emulator-defect",
            "known-emulator-defect",
            "known-emulator-defect"
        ]
    );
}
