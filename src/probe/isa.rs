//! Placeholder probe table (x86_64, aarch64); replaced by the full per-ISA table.

/// A complete static ELF for `arch` that exits with `code`.
pub fn exit_program(arch: &str, code: u8) -> Option<Vec<u8>> {
    let (machine, text): (u16, Vec<u8>) = match arch {
        "x86_64" => (
            62,
            vec![0xbf, code, 0, 0, 0, 0xb8, 0xe7, 0, 0, 0, 0x0f, 0x05],
        ),
        "aarch64" => {
            let mut t = Vec::new();
            for w in [
                0xd280_0000u32 | (u32::from(code) << 5),
                0xd280_0bc8,
                0xd400_0001,
            ] {
                t.extend_from_slice(&w.to_le_bytes());
            }
            (183, t)
        }
        _ => return None,
    };
    let base: u64 = 0x40_0000;
    let entry = base + 64 + 56;
    let mut f = Vec::new();
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&machine.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&entry.to_le_bytes());
    f.extend_from_slice(&64u64.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 0, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    let size = (64 + 56 + text.len()) as u64;
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&5u32.to_le_bytes());
    for v in [0u64, base, base, size, size, 0x1000] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&text);
    Some(f)
}

/// Arches with a probe.
pub fn supported_arches() -> &'static [&'static str] {
    &["x86_64", "aarch64"]
}
