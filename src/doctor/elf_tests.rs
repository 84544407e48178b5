//! Unit tests of the ELF parser on synthetic images, including every truncation.

use super::*;
use crate::doctor::testelf::{build, Spec};

#[test]
fn dynamic_aarch64_identity() {
    let mut s = Spec::aarch64_dynamic();
    s.runpath = Some("$ORIGIN/../lib:/opt/x".into());
    let f = parse(build(&s).as_slice()).unwrap();
    assert_eq!(f.class, 64);
    assert!(f.little_endian);
    assert_eq!(f.machine_name, "AArch64");
    assert_eq!(f.qemu_arch.as_deref(), Some("aarch64"));
    assert_eq!(f.platform.as_deref(), Some("linux/arm64"));
    assert_eq!(f.interp.as_deref(), Some("/lib/ld-linux-aarch64.so.1"));
    assert_eq!(f.needed, vec!["libc.so.6"]);
    assert_eq!(f.runpath, vec!["$ORIGIN/../lib", "/opt/x"]);
    assert_eq!(f.linkage, Linkage::Dynamic);
    assert_eq!(f.min_load_align, Some(0x1000));
}

#[test]
fn linkage_kinds() {
    let table = [
        (2u16, None, 0u32, Linkage::Static),
        (3, None, 0x0800_0000, Linkage::StaticPie),
        (3, None, 0, Linkage::SharedLibrary),
        (3, Some("/lib/ld.so"), 0, Linkage::Dynamic),
    ];
    for (e_type, interp, flags_1, want) in table {
        let mut s = Spec::new(62);
        s.e_type = e_type;
        s.interp = interp.map(str::to_string);
        s.flags_1 = flags_1;
        if e_type == 3 && interp.is_none() && flags_1 == 0 {
            s.soname = Some("libx.so.1".into());
        }
        let f = parse(build(&s).as_slice()).unwrap();
        assert_eq!(f.linkage, want, "{e_type} {interp:?} {flags_1:#x}");
    }
}

#[test]
fn e_flags_abi_table() {
    let table: [(u16, bool, u32, &str, &str); 8] = [
        (40, false, 0x0500_0400, "EABI5 hard-float", "linux/arm/v7"),
        (40, false, 0x0500_0200, "EABI5 soft-float", "linux/arm/v5"),
        (40, false, 0, "OABI (pre-EABI)", "linux/arm/v5"),
        (8, false, 0x20, "n32", ""),
        (8, false, 0x1000, "o32", "linux/mipsle"),
        (8, true, 0, "n64", "linux/mips64le"),
        (243, true, 0x5, "lp64d, RVC", "linux/riscv64"),
        (243, true, 0x0, "lp64", "linux/riscv64"),
    ];
    for (machine, c64, flags, abi, platform) in table {
        let mut s = Spec::new(machine);
        s.class64 = c64;
        s.flags = flags;
        let f = parse(build(&s).as_slice()).unwrap();
        assert_eq!(f.abi.as_deref(), Some(abi), "{machine} {flags:#x}");
        assert_eq!(
            f.platform.as_deref().unwrap_or(""),
            platform,
            "{machine} {flags:#x}"
        );
    }
}

#[test]
fn x86_isa_level_and_go_version() {
    let mut s = Spec::new(62);
    s.x86_isa_needed = Some(0b0111);
    s.go_version = Some("go1.21.3".into());
    let f = parse(build(&s).as_slice()).unwrap();
    assert_eq!(f.x86_isa_level, Some(3));
    assert!(f.is_go);
    assert_eq!(f.go_version.as_deref(), Some("go1.21.3"));
}

#[test]
fn arm_float_compatibility() {
    let mut hard = Spec::new(40);
    hard.class64 = false;
    hard.flags = 0x0500_0400;
    let mut soft = hard.clone();
    soft.flags = 0x0500_0200;
    let h = parse(build(&hard).as_slice()).unwrap();
    let s = parse(build(&soft).as_slice()).unwrap();
    assert!(h.compatible_library(&h));
    assert!(!h.compatible_library(&s));
    let x = parse(build(&Spec::new(62)).as_slice()).unwrap();
    assert!(!x.compatible_library(&h));
}

#[test]
fn every_truncation_is_an_error_or_a_subset_never_a_panic() {
    let mut s = Spec::aarch64_dynamic();
    s.x86_isa_needed = Some(3);
    s.go_version = Some("go1.22.0".into());
    let full = build(&s);
    for len in 0..full.len() {
        let _ = parse(&full[..len]);
    }
    // Flipping any single byte must never panic either.
    for i in 0..full.len() {
        let mut b = full.clone();
        b[i] ^= 0xff;
        let _ = parse(b.as_slice());
    }
}

#[test]
fn corrupt_sizes_are_reported() {
    assert!(parse(b"\x7fELF".as_slice())
        .unwrap_err()
        .0
        .contains("truncated"));
    let mut b = build(&Spec::new(62));
    b[4] = 9;
    assert!(parse(b.as_slice()).unwrap_err().0.contains("class"));
}
