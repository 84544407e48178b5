//! Test-only builder of small, well-formed little-endian ELF images.

/// What to put into the synthetic ELF.
#[derive(Debug, Clone)]
pub struct Spec {
    pub class64: bool,
    pub machine: u16,
    pub e_type: u16,
    pub flags: u32,
    pub osabi: u8,
    pub interp: Option<String>,
    pub needed: Vec<String>,
    pub runpath: Option<String>,
    pub rpath: Option<String>,
    pub soname: Option<String>,
    pub flags_1: u32,
    pub align: u64,
    /// GNU_PROPERTY_X86_ISA_1_NEEDED bits.
    pub x86_isa_needed: Option<u32>,
    /// Adds a Go build-id note and an inline build-info blob with this version.
    pub go_version: Option<String>,
}

impl Spec {
    pub fn new(machine: u16) -> Self {
        Spec {
            class64: true,
            machine,
            e_type: 2,
            flags: 0,
            osabi: 0,
            interp: None,
            needed: vec![],
            runpath: None,
            rpath: None,
            soname: None,
            flags_1: 0,
            align: 0x1000,
            x86_isa_needed: None,
            go_version: None,
        }
    }
    pub fn aarch64_dynamic() -> Self {
        let mut s = Spec::new(183);
        s.interp = Some("/lib/ld-linux-aarch64.so.1".into());
        s.needed = vec!["libc.so.6".into()];
        s.e_type = 3;
        s.flags_1 = 0x0800_0000;
        s
    }
}

struct W {
    out: Vec<u8>,
    c64: bool,
}

impl W {
    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn word(&mut self, v: u64) {
        if self.c64 {
            self.out.extend_from_slice(&v.to_le_bytes());
        } else {
            self.u32(v as u32);
        }
    }
}

const BASE: u64 = 0x10000;

/// Builds the image: header, program headers, then interp, strings, dynamic, notes.
pub fn build(s: &Spec) -> Vec<u8> {
    let c64 = s.class64;
    let (ehsize, phentsize) = if c64 { (64u64, 56u64) } else { (52, 32) };
    let mut strtab = vec![0u8];
    let mut add_str = |t: &str| {
        let off = strtab.len() as u64;
        strtab.extend_from_slice(t.as_bytes());
        strtab.push(0);
        off
    };
    let mut dyns: Vec<(u64, u64)> = Vec::new();
    for n in &s.needed {
        dyns.push((1, add_str(n)));
    }
    if let Some(r) = &s.rpath {
        dyns.push((15, add_str(r)));
    }
    if let Some(r) = &s.runpath {
        dyns.push((29, add_str(r)));
    }
    if let Some(r) = &s.soname {
        dyns.push((14, add_str(r)));
    }
    let has_dynamic = !dyns.is_empty() || s.flags_1 != 0 || s.interp.is_some();
    if s.flags_1 != 0 {
        dyns.push((0x6fff_fffb, s.flags_1 as u64));
    }
    let mut notes = Vec::new();
    if let Some(bits) = s.x86_isa_needed {
        // NT_GNU_PROPERTY_TYPE_0 with one property, 8-byte aligned on 64-bit.
        let desc_len = if c64 { 16 } else { 12 };
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&(desc_len as u32).to_le_bytes());
        notes.extend_from_slice(&5u32.to_le_bytes());
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&0xc000_8002u32.to_le_bytes());
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&bits.to_le_bytes());
        if c64 {
            notes.extend_from_slice(&[0; 4]);
        }
    }
    let go_note = s.go_version.is_some();
    if go_note {
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(b"Go\0\0");
        notes.extend_from_slice(b"abcd");
    }
    let nph = 1
        + s.interp.is_some() as u64
        + has_dynamic as u64
        + !notes.is_empty() as u64
        + go_note as u64;
    let mut off = ehsize + nph * phentsize;
    let interp_off = off;
    let interp_bytes: Vec<u8> = s
        .interp
        .as_ref()
        .map(|i| [i.as_bytes(), b"\0"].concat())
        .unwrap_or_default();
    off += interp_bytes.len() as u64;
    off = off.div_ceil(8) * 8;
    let str_off = off;
    off += strtab.len() as u64;
    off = off.div_ceil(8) * 8;
    let dyn_off = off;
    dyns.push((5, BASE + str_off));
    dyns.push((10, strtab.len() as u64));
    dyns.push((0, 0));
    let dyn_len = dyns.len() as u64 * if c64 { 16 } else { 8 };
    off += if has_dynamic { dyn_len } else { 0 };
    let note_off = off;
    off += notes.len() as u64;
    off = off.div_ceil(16) * 16;
    let go_off = off;
    let mut go_blob = Vec::new();
    if let Some(v) = &s.go_version {
        go_blob.extend_from_slice(b"\xff Go buildinf:");
        go_blob.push(8);
        go_blob.push(2);
        go_blob.resize(32, 0);
        go_blob.push(v.len() as u8);
        go_blob.extend_from_slice(v.as_bytes());
        go_blob.push(0);
    }
    off += go_blob.len() as u64;
    let total = off;

    let mut w = W {
        out: Vec::new(),
        c64,
    };
    w.out.extend_from_slice(b"\x7fELF");
    w.out.push(if c64 { 2 } else { 1 });
    w.out.push(1);
    w.out.push(1);
    w.out.push(s.osabi);
    w.out.extend_from_slice(&[0; 8]);
    w.u16(s.e_type);
    w.u16(s.machine);
    w.u32(1);
    w.word(BASE + 0x100);
    w.word(ehsize);
    w.word(0);
    w.u32(s.flags);
    w.u16(ehsize as u16);
    w.u16(phentsize as u16);
    w.u16(nph as u16);
    w.u16(if c64 { 64 } else { 40 });
    w.u16(0);
    w.u16(0);
    let ph = |w: &mut W, p_type: u32, flags: u32, offset: u64, size: u64, align: u64| {
        w.u32(p_type);
        if c64 {
            w.u32(flags);
        }
        w.word(offset);
        w.word(BASE + offset);
        w.word(BASE + offset);
        w.word(size);
        w.word(size);
        if !c64 {
            w.u32(flags);
        }
        w.word(align);
    };
    ph(&mut w, 1, 5, 0, total, s.align);
    if s.interp.is_some() {
        ph(&mut w, 3, 4, interp_off, interp_bytes.len() as u64, 1);
    }
    if has_dynamic {
        ph(&mut w, 2, 6, dyn_off, dyn_len, 8);
    }
    if !notes.is_empty() {
        ph(
            &mut w,
            4,
            4,
            note_off,
            notes.len() as u64,
            if c64 { 8 } else { 4 },
        );
    }
    if go_note {
        ph(&mut w, 1, 6, go_off, go_blob.len() as u64, s.align);
    }
    w.out.extend_from_slice(&interp_bytes);
    w.out.resize(str_off as usize, 0);
    w.out.extend_from_slice(&strtab);
    w.out.resize(dyn_off as usize, 0);
    if has_dynamic {
        for (t, v) in &dyns {
            w.word(*t);
            w.word(*v);
        }
    }
    w.out.extend_from_slice(&notes);
    w.out.resize(go_off as usize, 0);
    w.out.extend_from_slice(&go_blob);
    w.out
}
