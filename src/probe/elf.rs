//! Minimal ELF writer: a static `ET_EXEC` image whose one R+X `PT_LOAD` holds headers and code.
//!
//! Layout (pure, no I/O): ELF header, one program header, zero padding up to a 16-byte
//! boundary, then the code. The single segment maps the whole file at [`LOAD_ADDRESS`], so
//! the entry point is [`code_address`]. There are no section headers.

/// ELF file class: 32- or 64-bit header and address layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Elf32,
    Elf64,
}

/// Byte order of every multi-byte field (and of instruction words on most ISAs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    Little,
    Big,
}

/// What the ELF header says about the machine: the fields binfmt_misc and loaders check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ident {
    pub class: Class,
    pub endian: Endian,
    /// `e_machine`, e.g. 183 for AArch64.
    pub machine: u16,
    /// `e_flags`: ABI bits some loaders check (MIPS n32, ppc64 ELF ABI version, hexagon CPU).
    pub flags: u32,
    /// `EI_OSABI`.
    pub osabi: u8,
}

/// Virtual address of the file's first byte. 4 MiB: above every `vm.mmap_min_addr` in use,
/// a multiple of [`SEGMENT_ALIGN`], and inside the user address space of every 32-bit target.
pub const LOAD_ADDRESS: u64 = 0x40_0000;

/// `p_align`: 64 KiB, the largest page size of any Linux target, so hosts with 4K, 16K or
/// 64K pages all accept the segment.
pub const SEGMENT_ALIGN: u64 = 0x1_0000;

const ET_EXEC: u16 = 2;
const EV_CURRENT: u8 = 1;
const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_R: u32 = 4;

impl Class {
    fn ehdr_size(self) -> u64 {
        match self {
            Class::Elf32 => 52,
            Class::Elf64 => 64,
        }
    }
    fn phdr_size(self) -> u64 {
        match self {
            Class::Elf32 => 32,
            Class::Elf64 => 56,
        }
    }
    fn shdr_size(self) -> u64 {
        match self {
            Class::Elf32 => 40,
            Class::Elf64 => 64,
        }
    }
}

/// File offset of the code: right after the headers, rounded up to 16 bytes.
pub fn code_offset(class: Class) -> u64 {
    (class.ehdr_size() + class.phdr_size()).next_multiple_of(16)
}

/// Virtual address of the code's first byte, which is also the entry point.
pub fn code_address(class: Class) -> u64 {
    LOAD_ADDRESS + code_offset(class)
}

/// Appends fields in one byte order and one address width.
struct Writer {
    buf: Vec<u8>,
    class: Class,
    endian: Endian,
}

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    fn u16(&mut self, v: u16) {
        match self.endian {
            Endian::Little => self.bytes(&v.to_le_bytes()),
            Endian::Big => self.bytes(&v.to_be_bytes()),
        }
    }
    fn u32(&mut self, v: u32) {
        match self.endian {
            Endian::Little => self.bytes(&v.to_le_bytes()),
            Endian::Big => self.bytes(&v.to_be_bytes()),
        }
    }
    fn u64(&mut self, v: u64) {
        match self.endian {
            Endian::Little => self.bytes(&v.to_le_bytes()),
            Endian::Big => self.bytes(&v.to_be_bytes()),
        }
    }
    /// An address or offset: 4 bytes in ELF32, 8 in ELF64. The image is far below 4 GiB,
    /// so the 32-bit truncation never loses bits.
    fn word(&mut self, v: u64) {
        match self.class {
            Class::Elf32 => self.u32(v as u32),
            Class::Elf64 => self.u64(v),
        }
    }
    /// A 16-bit header size field.
    fn half_size(&mut self, v: u64) {
        self.u16(v as u16);
    }
}

/// A complete executable: headers for `ident`, then `code`, entered at its first byte.
pub fn write_exec(ident: &Ident, code: &[u8]) -> Vec<u8> {
    let class = ident.class;
    let offset = code_offset(class);
    let total = offset + code.len() as u64;
    let mut w = Writer {
        buf: Vec::with_capacity(total as usize),
        class,
        endian: ident.endian,
    };
    // e_ident
    w.bytes(b"\x7fELF");
    w.bytes(&[
        match class {
            Class::Elf32 => 1,
            Class::Elf64 => 2,
        },
        match ident.endian {
            Endian::Little => 1,
            Endian::Big => 2,
        },
        EV_CURRENT,
        ident.osabi,
        0, // EI_ABIVERSION
    ]);
    w.bytes(&[0; 7]);
    w.u16(ET_EXEC);
    w.u16(ident.machine);
    w.u32(u32::from(EV_CURRENT));
    w.word(code_address(class)); // e_entry
    w.word(class.ehdr_size()); // e_phoff
    w.word(0); // e_shoff
    w.u32(ident.flags);
    w.half_size(class.ehdr_size());
    w.half_size(class.phdr_size());
    w.u16(1); // e_phnum
    w.half_size(class.shdr_size());
    w.u16(0); // e_shnum
    w.u16(0); // e_shstrndx
    debug_assert_eq!(w.buf.len() as u64, class.ehdr_size());

    // The one program header: the whole file, read + execute.
    w.u32(PT_LOAD);
    if class == Class::Elf64 {
        w.u32(PF_R | PF_X);
    }
    w.word(0); // p_offset
    w.word(LOAD_ADDRESS); // p_vaddr
    w.word(LOAD_ADDRESS); // p_paddr
    w.word(total); // p_filesz
    w.word(total); // p_memsz
    if class == Class::Elf32 {
        w.u32(PF_R | PF_X);
    }
    w.word(SEGMENT_ALIGN);
    debug_assert_eq!(w.buf.len() as u64, class.ehdr_size() + class.phdr_size());

    w.buf.resize(offset as usize, 0);
    w.bytes(code);
    w.buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::read::elf::{FileHeader, ProgramHeader};
    use object::Endianness;

    /// What a parser reads back from one written image.
    #[derive(Debug, PartialEq)]
    struct Parsed {
        big: bool,
        osabi: u8,
        e_type: u16,
        machine: u16,
        flags: u32,
        entry: u64,
        shnum: u16,
        loads: Vec<(u32, u32, u64, u64, u64, u64, u64)>,
    }

    fn parse_with<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> Parsed {
        let h = H::parse(data).unwrap();
        let e = h.endian().unwrap();
        let phs = h.program_headers(e, data).unwrap();
        Parsed {
            big: e == Endianness::Big,
            osabi: h.e_ident().os_abi,
            e_type: h.e_type(e),
            machine: h.e_machine(e),
            flags: h.e_flags(e),
            entry: h.e_entry(e).into(),
            shnum: h.e_shnum(e),
            loads: phs
                .iter()
                .map(|p| {
                    (
                        p.p_type(e),
                        p.p_flags(e),
                        p.p_offset(e).into(),
                        p.p_vaddr(e).into(),
                        p.p_filesz(e).into(),
                        p.p_memsz(e).into(),
                        p.p_align(e).into(),
                    )
                })
                .collect(),
        }
    }

    fn parse(class: Class, data: &[u8]) -> Parsed {
        match class {
            Class::Elf32 => parse_with::<object::elf::FileHeader32<Endianness>>(data),
            Class::Elf64 => parse_with::<object::elf::FileHeader64<Endianness>>(data),
        }
    }

    #[test]
    fn every_class_and_byte_order_parses_back() {
        let code = [0xde, 0xad, 0xbe, 0xef, 0x01];
        for (class, endian, machine, flags, osabi) in [
            (Class::Elf32, Endian::Little, 3u16, 0u32, 0u8),
            (Class::Elf32, Endian::Big, 8, 0x7000_1000, 3),
            (Class::Elf64, Endian::Little, 183, 2, 0),
            (Class::Elf64, Endian::Big, 22, 0x8000_0020, 97),
        ] {
            let ident = Ident {
                class,
                endian,
                machine,
                flags,
                osabi,
            };
            let img = write_exec(&ident, &code);
            let total = img.len() as u64;
            assert_eq!(total, code_offset(class) + code.len() as u64);
            assert_eq!(
                parse(class, &img),
                Parsed {
                    big: endian == Endian::Big,
                    osabi,
                    e_type: object::elf::ET_EXEC,
                    machine,
                    flags,
                    entry: code_address(class),
                    shnum: 0,
                    loads: vec![(
                        object::elf::PT_LOAD,
                        object::elf::PF_R | object::elf::PF_X,
                        0,
                        LOAD_ADDRESS,
                        total,
                        total,
                        SEGMENT_ALIGN
                    )],
                },
                "{ident:?}"
            );
            assert_eq!(&img[code_offset(class) as usize..], &code);
        }
    }

    #[test]
    fn object_file_parser_sees_an_executable_for_the_machine() {
        use object::{Object, ObjectKind};
        let img = write_exec(
            &Ident {
                class: Class::Elf64,
                endian: Endian::Little,
                machine: object::elf::EM_AARCH64,
                flags: 0,
                osabi: 0,
            },
            &[0; 4],
        );
        let f = object::File::parse(&*img).unwrap();
        assert_eq!(f.kind(), ObjectKind::Executable);
        assert_eq!(f.architecture(), object::Architecture::Aarch64);
        assert_eq!(f.entry(), code_address(Class::Elf64));
        assert!(f.is_little_endian() && f.is_64());
    }

    #[test]
    fn layout_is_aligned_and_inside_the_segment() {
        assert_eq!(code_offset(Class::Elf32), 96);
        assert_eq!(code_offset(Class::Elf64), 128);
        assert_eq!(LOAD_ADDRESS % SEGMENT_ALIGN, 0);
        for class in [Class::Elf32, Class::Elf64] {
            // 8-byte aligned code is what a ppc64 function descriptor needs.
            assert_eq!(code_address(class) % 8, 0);
        }
    }

    #[test]
    fn header_starts_like_the_kernel_magic() {
        let img = write_exec(
            &Ident {
                class: Class::Elf32,
                endian: Endian::Big,
                machine: 0x0102,
                flags: 0,
                osabi: 0,
            },
            &[],
        );
        assert_eq!(
            &img[..20],
            b"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x01\x02"
        );
    }
}
