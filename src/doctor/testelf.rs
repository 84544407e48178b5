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

/// The dynamic string table and the dynamic entries that point into it (DT_NEEDED,
/// DT_RPATH, DT_RUNPATH, DT_SONAME, DT_FLAGS_1), and whether a PT_DYNAMIC is needed.
fn dynamic_parts(s: &Spec) -> (Vec<u8>, Vec<(u64, u64)>, bool) {
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
    (strtab, dyns, has_dynamic)
}

/// The PT_NOTE contents: a GNU property note (x86 ISA level) and the Go build-id note.
fn notes(s: &Spec) -> Vec<u8> {
    let mut notes = Vec::new();
    if let Some(bits) = s.x86_isa_needed {
        // NT_GNU_PROPERTY_TYPE_0 with one property, 8-byte aligned on 64-bit.
        let desc_len = if s.class64 { 16 } else { 12 };
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&(desc_len as u32).to_le_bytes());
        notes.extend_from_slice(&5u32.to_le_bytes());
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&0xc000_8002u32.to_le_bytes());
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&bits.to_le_bytes());
        if s.class64 {
            notes.extend_from_slice(&[0; 4]);
        }
    }
    if s.go_version.is_some() {
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(b"Go\0\0");
        notes.extend_from_slice(b"abcd");
    }
    notes
}

/// The inline Go build-info blob (magic, pointer size, flags, then the version string).
fn go_blob(s: &Spec) -> Vec<u8> {
    let mut blob = Vec::new();
    if let Some(v) = &s.go_version {
        blob.extend_from_slice(b"\xff Go buildinf:");
        blob.push(8);
        blob.push(2);
        blob.resize(32, 0);
        blob.push(v.len() as u8);
        blob.extend_from_slice(v.as_bytes());
        blob.push(0);
    }
    blob
}

/// File offsets of each part, in file order.
struct Layout {
    ehsize: u64,
    phentsize: u64,
    nph: u64,
    interp: u64,
    strtab: u64,
    dynamic: u64,
    dyn_len: u64,
    notes: u64,
    go: u64,
    total: u64,
}

/// The parts of one image, before they are laid out.
struct Parts {
    interp: Vec<u8>,
    strtab: Vec<u8>,
    dyns: Vec<(u64, u64)>,
    has_dynamic: bool,
    notes: Vec<u8>,
    go_blob: Vec<u8>,
}

impl Parts {
    fn of(s: &Spec) -> Parts {
        let (strtab, dyns, has_dynamic) = dynamic_parts(s);
        Parts {
            interp: s
                .interp
                .as_ref()
                .map(|i| [i.as_bytes(), b"\0"].concat())
                .unwrap_or_default(),
            strtab,
            dyns,
            has_dynamic,
            notes: notes(s),
            go_blob: go_blob(s),
        }
    }

    /// Places the parts; completes the dynamic section with DT_STRTAB, DT_STRSZ, DT_NULL.
    fn layout(&mut self, s: &Spec) -> Layout {
        let c64 = s.class64;
        let (ehsize, phentsize) = if c64 { (64u64, 56u64) } else { (52, 32) };
        let nph = 1
            + s.interp.is_some() as u64
            + self.has_dynamic as u64
            + !self.notes.is_empty() as u64
            + s.go_version.is_some() as u64;
        let mut off = ehsize + nph * phentsize;
        let interp = off;
        off += self.interp.len() as u64;
        off = off.div_ceil(8) * 8;
        let strtab = off;
        off += self.strtab.len() as u64;
        off = off.div_ceil(8) * 8;
        let dynamic = off;
        self.dyns.push((5, BASE + strtab));
        self.dyns.push((10, self.strtab.len() as u64));
        self.dyns.push((0, 0));
        let dyn_len = self.dyns.len() as u64 * if c64 { 16 } else { 8 };
        off += if self.has_dynamic { dyn_len } else { 0 };
        let notes = off;
        off += self.notes.len() as u64;
        off = off.div_ceil(16) * 16;
        let go = off;
        off += self.go_blob.len() as u64;
        Layout {
            ehsize,
            phentsize,
            nph,
            interp,
            strtab,
            dynamic,
            dyn_len,
            notes,
            go,
            total: off,
        }
    }
}

/// The ELF header.
fn write_header(w: &mut W, s: &Spec, l: &Layout) {
    w.out.extend_from_slice(b"\x7fELF");
    w.out.push(if s.class64 { 2 } else { 1 });
    w.out.push(1);
    w.out.push(1);
    w.out.push(s.osabi);
    w.out.extend_from_slice(&[0; 8]);
    w.u16(s.e_type);
    w.u16(s.machine);
    w.u32(1);
    // The entry point: the first byte of the one PT_LOAD, which spans the whole file.
    w.word(BASE);
    w.word(l.ehsize);
    w.word(0);
    w.u32(s.flags);
    w.u16(l.ehsize as u16);
    w.u16(l.phentsize as u16);
    w.u16(l.nph as u16);
    w.u16(if s.class64 { 64 } else { 40 });
    w.u16(0);
    w.u16(0);
}

impl W {
    /// One program header mapping `size` bytes at `offset` to `BASE + offset`.
    fn phdr(&mut self, p_type: u32, flags: u32, offset: u64, size: u64, align: u64) {
        self.u32(p_type);
        if self.c64 {
            self.u32(flags);
        }
        self.word(offset);
        self.word(BASE + offset);
        self.word(BASE + offset);
        self.word(size);
        self.word(size);
        if !self.c64 {
            self.u32(flags);
        }
        self.word(align);
    }
}

/// The program headers: PT_LOAD of everything, then PT_INTERP, PT_DYNAMIC, PT_NOTE and the
/// Go blob's PT_LOAD as present.
fn write_phdrs(w: &mut W, s: &Spec, p: &Parts, l: &Layout) {
    w.phdr(1, 5, 0, l.total, s.align);
    if s.interp.is_some() {
        w.phdr(3, 4, l.interp, p.interp.len() as u64, 1);
    }
    if p.has_dynamic {
        w.phdr(2, 6, l.dynamic, l.dyn_len, 8);
    }
    if !p.notes.is_empty() {
        let align = if s.class64 { 8 } else { 4 };
        w.phdr(4, 4, l.notes, p.notes.len() as u64, align);
    }
    if s.go_version.is_some() {
        w.phdr(1, 6, l.go, p.go_blob.len() as u64, s.align);
    }
}

/// Builds the image: header, program headers, then interp, strings, dynamic, notes.
pub fn build(s: &Spec) -> Vec<u8> {
    let mut p = Parts::of(s);
    let l = p.layout(s);
    let mut w = W {
        out: Vec::new(),
        c64: s.class64,
    };
    write_header(&mut w, s, &l);
    write_phdrs(&mut w, s, &p, &l);
    w.out.extend_from_slice(&p.interp);
    w.out.resize(l.strtab as usize, 0);
    w.out.extend_from_slice(&p.strtab);
    w.out.resize(l.dynamic as usize, 0);
    if p.has_dynamic {
        for (t, v) in &p.dyns {
            w.word(*t);
            w.word(*v);
        }
    }
    w.out.extend_from_slice(&p.notes);
    w.out.resize(l.go as usize, 0);
    w.out.extend_from_slice(&p.go_blob);
    w.out
}
