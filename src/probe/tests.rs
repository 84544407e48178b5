//! Probe table tests: known-answer code bytes, ELF identity, and agreement with binfmt magic.

use super::elf::{self, Class, Endian};
use super::{exit_program, lookup, supported_arches};
use crate::catalog::{Catalog, Translator, DEBIAN_ONLY_TARGETS, NO_BINFMT_MAGIC, QEMU_TARGETS};
use crate::model::Matcher;

/// Code bytes of `exit_group(42)`, as produced by GNU as / llvm-mc and decoded back by
/// objdump or QEMU's disassembler (`-d in_asm`); CRIS from the opcode table's match bits and
/// a run under qemu-cris-static. See the module docs of `isa_code`.
const EXIT_42: [(&str, &str); 35] = [
    ("aarch64", "400580d2c80b80d2010000d4"),
    ("aarch64_be", "400580d2c80b80d2010000d4"),
    ("alpha", "2a001f2295011f2083000000"),
    ("cris", "40a22aa240923f923f923f923f923de9"),
    ("arm", "2a00a0e3f870a0e3000000ef"),
    ("armeb", "2a00a0e3f870a0e3000000ef"),
    ("hexagon", "40c50078c6cb007804c00054"),
    ("hppa", "341a0054e4008200341401bc"),
    ("i386", "bb2a000000b8fc000000cd80"),
    ("i486", "bb2a000000b8fc000000cd80"),
    ("loongarch64", "04a880030b78810300002b00"),
    ("m68k", "203c000000f7223c0000002a4e40"),
    ("microblaze", "30a0002a318000fcb9cc0008"),
    ("microblazeel", "2a00a030fc0080310800ccb9"),
    ("mips", "2404002a240210960000000c"),
    ("mips64", "2404002a240214550000000c"),
    ("mips64el", "2a000424551402240c000000"),
    ("mipsel", "2a000424961002240c000000"),
    ("mipsn32", "2404002a2402183d0000000c"),
    ("mipsn32el", "2a0004243d1802240c000000"),
    ("or1k", "9c60002a9d60005e20000001"),
    ("ppc", "3860002a380000ea44000002"),
    (
        "ppc64",
        "0000000000400098000000000000000000000000000000003860002a380000ea44000002",
    ),
    ("ppc64le", "2a006038ea00003802000044"),
    ("riscv32", "1305a0029308e00573000000"),
    ("riscv64", "1305a0029308e00573000000"),
    ("s390x", "a729002a0af8"),
    ("sh4", "2ae44c64fce33c6311c3"),
    ("sh4eb", "e42a644ce3fc633cc311"),
    ("sparc", "9010202a821020bc91d02010"),
    ("sparc32plus", "9010202a821020bc91d02010"),
    ("sparc64", "9010202a821020bc91d0206d"),
    ("x86_64", "bf2a000000b8e70000000f05"),
    ("xtensa", "62a02a22a077005000"),
    ("xtensaeb", "260a2a220a77000500"),
];

fn header(arch: &str) -> Vec<u8> {
    let mut p = exit_program(arch, 42).unwrap();
    p.truncate(256);
    p
}

/// The arches whose probe the matcher accepts.
fn matched_by(m: &Matcher) -> Vec<&'static str> {
    supported_arches()
        .iter()
        .copied()
        .filter(|a| m.matches(&header(a), None))
        .collect()
}

#[test]
fn every_qemu_target_has_exactly_one_probe() {
    let mut got: Vec<&str> = supported_arches().to_vec();
    let mut want = [&QEMU_TARGETS[..], &DEBIAN_ONLY_TARGETS[..]].concat();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    for a in QEMU_TARGETS.iter().chain(&DEBIAN_ONLY_TARGETS) {
        assert_eq!(lookup(a).unwrap().arch, *a);
    }
    let no_magic = NO_BINFMT_MAGIC.map(|(a, _)| a);
    for unknown in ["", "amd64", "arm64", "AARCH64", "qemu-aarch64"]
        .iter()
        .chain(&no_magic)
    {
        assert!(exit_program(unknown, 0).is_none(), "{unknown}");
    }
}

#[test]
fn code_bytes_match_the_assembler() {
    assert_eq!(EXIT_42.len(), supported_arches().len());
    for (arch, hex) in EXIT_42 {
        let isa = lookup(arch).unwrap();
        assert_eq!(crate::model::to_hex(&isa.code(42)), hex, "{arch}");
        let prog = exit_program(arch, 42).unwrap();
        let off = elf::code_offset(isa.class) as usize;
        assert_eq!(crate::model::to_hex(&prog[off..]), hex, "{arch}");
    }
}

#[test]
fn the_exit_code_reaches_the_instruction_stream() {
    for a in supported_arches() {
        let isa = lookup(a).unwrap();
        let all: Vec<Vec<u8>> = [0u8, 1, 7, 42, 127, 128, 200, 255]
            .iter()
            .map(|c| isa.code(*c))
            .collect();
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y, "{a}: two exit codes give the same code");
            }
        }
    }
}

#[test]
fn probes_carry_the_identity_from_the_table_and_fit_the_kernel_buffer() {
    for a in supported_arches() {
        let isa = lookup(a).unwrap();
        let p = exit_program(a, 3).unwrap();
        assert!(p.len() <= 256, "{a}: {} bytes", p.len());
        assert_eq!(&p[..4], b"\x7fELF");
        assert_eq!(p[4], if isa.class == Class::Elf64 { 2 } else { 1 }, "{a}");
        assert_eq!(p[5], if isa.endian == Endian::Big { 2 } else { 1 }, "{a}");
        let (machine, flags) = match (isa.class, isa.endian) {
            (Class::Elf32, Endian::Little) => (
                u16::from_le_bytes([p[18], p[19]]),
                u32::from_le_bytes(p[36..40].try_into().unwrap()),
            ),
            (Class::Elf32, Endian::Big) => (
                u16::from_be_bytes([p[18], p[19]]),
                u32::from_be_bytes(p[36..40].try_into().unwrap()),
            ),
            (Class::Elf64, Endian::Little) => (
                u16::from_le_bytes([p[18], p[19]]),
                u32::from_le_bytes(p[48..52].try_into().unwrap()),
            ),
            (Class::Elf64, Endian::Big) => (
                u16::from_be_bytes([p[18], p[19]]),
                u32::from_be_bytes(p[48..52].try_into().unwrap()),
            ),
        };
        assert_eq!((machine, flags), (isa.machine, isa.flags), "{a}");
    }
}

#[test]
fn abi_bits_the_loaders_check() {
    let flags = |a: &str| lookup(a).unwrap().flags;
    // MIPS: binfmt and QEMU tell o32 from n32 by EF_MIPS_ABI2.
    for a in ["mips", "mipsel"] {
        assert_eq!(flags(a) & 0x20, 0, "{a}");
    }
    for a in ["mipsn32", "mipsn32el"] {
        assert_eq!(flags(a) & 0x20, 0x20, "{a}");
    }
    // ppc64: ELFv1 enters through a descriptor, ELFv2 directly.
    assert_eq!(flags("ppc64") & 3, 1);
    assert_eq!(flags("ppc64le") & 3, 2);
    let ppc64 = exit_program("ppc64", 0).unwrap();
    let entry = elf::code_address(Class::Elf64);
    let off = elf::code_offset(Class::Elf64) as usize;
    let target = u64::from_be_bytes(ppc64[off..off + 8].try_into().unwrap());
    assert_eq!(target, entry + 24);
    // ARM EABI5; armeb as BE8 so the code words stay little-endian.
    assert_eq!(flags("arm"), 0x0500_0000);
    assert_eq!(flags("armeb"), 0x0580_0000);
    assert_eq!(lookup("i486").unwrap().machine, 6);
    assert_eq!(lookup("sparc32plus").unwrap().machine, 18);
}

/// Register lines from Debian's qemu-user-static (`/usr/lib/binfmt.d/qemu-*.conf`, or the
/// directory in `BINFMTD_TEST_BINFMT_D`).
fn debian_rules() -> Vec<crate::model::Rule> {
    let dir = std::env::var_os("BINFMTD_TEST_BINFMT_D")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/lib/binfmt.d".into());
    let mut rules = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return rules;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("qemu-") && name.ends_with(".conf")) {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap();
        for line in text.lines() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                continue;
            }
            rules.push(crate::kernel::codec::decode(t).unwrap());
        }
    }
    rules
}

#[test]
fn each_probe_matches_exactly_its_debian_qemu_entry() {
    let rules = debian_rules();
    if rules.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have qemu-user-static's binfmt.d files"
        );
        eprintln!("skipped: no Debian qemu binfmt.d files on this machine");
        return;
    }
    let mut seen = 0;
    for r in &rules {
        let arch = r.name.trim_start_matches("qemu-");
        let got = matched_by(&r.matcher);
        if lookup(arch).is_some() {
            assert_eq!(got, vec![arch], "{}", r.name);
            seen += 1;
        } else {
            // A Debian entry without a probe (none today) must not claim another ISA's probe.
            assert!(got.is_empty(), "{} matches {got:?}", r.name);
        }
    }
    assert!(seen >= 28, "only {seen} Debian qemu entries checked");
}

#[test]
fn each_catalog_handler_matches_the_probe_of_its_arch() {
    let cat = Catalog::embedded().unwrap();
    let mut checked = 0;
    for h in cat.handlers.values() {
        let m = h.matcher().unwrap();
        let known = lookup(&h.arch).is_some();
        if h.translator == Translator::Qemu {
            assert!(known, "{}: no probe for arch {:?}", h.name, h.arch);
            // A qemu entry that also claimed another ISA's probe would run it with the
            // wrong emulator whenever it is the newest registration.
            assert_eq!(matched_by(&m), vec![h.arch.as_str()], "{}", h.name);
        } else if known {
            assert!(m.matches(&header(&h.arch), None), "{}", h.name);
        }
        checked += 1;
    }
    assert!(checked >= 1, "the embedded catalog is empty");
}
