//! Pure ELF analysis: bytes (any `object::ReadRef`) to [`ElfFacts`], bounded in what it reads.

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::{Endianness, ReadRef};
use serde::Serialize;

/// Largest segment (dynamic table, notes, string table) read from one file. Real binaries
/// stay far below; a corrupt header claiming more is reported instead of read.
const MAX_SEGMENT: u64 = 8 << 20;

/// Why the ELF could not be analysed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ElfError(pub String);

/// Static, dynamic, static-pie or a shared library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Linkage {
    Static,
    StaticPie,
    Dynamic,
    SharedLibrary,
}

/// Everything doctor needs to know about one ELF file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfFacts {
    /// 32 or 64.
    pub class: u8,
    pub little_endian: bool,
    pub machine: u16,
    /// Human name of `e_machine`, e.g. `AArch64`.
    pub machine_name: String,
    pub osabi: u8,
    pub e_type: u16,
    pub e_flags: u32,
    /// ABI details from `e_flags`, e.g. `EABI5 hard-float`, `n32`, `lp64d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abi: Option<String>,
    pub linkage: Linkage,
    /// PT_INTERP: the loader path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interp: Option<String>,
    pub needed: Vec<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soname: Option<String>,
    /// Smallest PT_LOAD alignment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_load_align: Option<u64>,
    /// x86-64 ISA level from GNU_PROPERTY_X86_ISA_1_NEEDED (1..=4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x86_isa_level: Option<u8>,
    /// AArch64 BTI/PAC property bits (GNU_PROPERTY_AARCH64_FEATURE_1_AND).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aarch64_features: Option<u32>,
    /// Present for Go programs; the version when the build info carries it inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub go_version: Option<String>,
    pub is_go: bool,
    /// A GNU ABI-tag note (NT_GNU_ABI_TAG) names Linux as the operating system.
    #[serde(skip)]
    pub linux_abi_tag: bool,
    /// QEMU's name for the ISA, e.g. `aarch64`, `arm`, `mipsn32el`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qemu_arch: Option<String>,
    /// OCI platform, e.g. `linux/arm64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl ElfFacts {
    /// True when a shared object `other` can be loaded into this process (what ld.so checks).
    pub fn compatible_library(&self, other: &ElfFacts) -> bool {
        self.class == other.class
            && self.little_endian == other.little_endian
            && self.machine == other.machine
            && (self.machine != elf::EM_ARM || arm_float(self.e_flags) == arm_float(other.e_flags))
    }
    /// "64-bit little-endian AArch64" style description.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{}-bit {}-endian {}",
            self.class,
            if self.little_endian { "little" } else { "big" },
            self.machine_name
        );
        if let Some(abi) = &self.abi {
            s.push_str(&format!(" ({abi})"));
        }
        s
    }
}

/// ARM float ABI from e_flags: Some(true) hard, Some(false) soft, None unspecified.
fn arm_float(flags: u32) -> Option<bool> {
    if flags & elf::EF_ARM_ABI_FLOAT_HARD != 0 {
        Some(true)
    } else if flags & elf::EF_ARM_ABI_FLOAT_SOFT != 0 {
        Some(false)
    } else {
        None
    }
}

/// Name of an ELF machine, and the QEMU arch / OCI platform for it.
pub fn machine_info(
    machine: u16,
    class: u8,
    le: bool,
    flags: u32,
) -> (String, Option<&'static str>, Option<String>) {
    let (name, qemu, oci): (&str, Option<&'static str>, Option<&str>) = match machine {
        elf::EM_X86_64 => ("x86-64", Some("x86_64"), Some("linux/amd64")),
        elf::EM_386 => ("Intel 80386", Some("i386"), Some("linux/386")),
        elf::EM_AARCH64 if le => ("AArch64", Some("aarch64"), Some("linux/arm64")),
        elf::EM_AARCH64 => ("AArch64", Some("aarch64_be"), None),
        elf::EM_ARM => {
            let oci = match arm_float(flags) {
                Some(true) => Some("linux/arm/v7"),
                _ => Some("linux/arm/v5"),
            };
            (
                "ARM",
                Some(if le { "arm" } else { "armeb" }),
                if le { oci } else { None },
            )
        }
        elf::EM_RISCV if class == 64 => ("RISC-V", Some("riscv64"), Some("linux/riscv64")),
        elf::EM_RISCV => ("RISC-V", Some("riscv32"), None),
        elf::EM_PPC64 if le => ("PowerPC64", Some("ppc64le"), Some("linux/ppc64le")),
        elf::EM_PPC64 => ("PowerPC64", Some("ppc64"), Some("linux/ppc64")),
        elf::EM_PPC => ("PowerPC", Some("ppc"), None),
        elf::EM_S390 => ("IBM S/390", Some("s390x"), Some("linux/s390x")),
        elf::EM_MIPS | elf::EM_MIPS_RS3_LE => {
            let n32 = flags & elf::EF_MIPS_ABI2 != 0;
            let q = match (class, n32, le) {
                (64, _, true) => "mips64el",
                (64, _, false) => "mips64",
                (_, true, true) => "mipsn32el",
                (_, true, false) => "mipsn32",
                (_, false, true) => "mipsel",
                (_, false, false) => "mips",
            };
            let oci = match q {
                "mips64el" => Some("linux/mips64le"),
                "mips64" => Some("linux/mips64"),
                "mipsel" => Some("linux/mipsle"),
                "mips" => Some("linux/mips"),
                _ => None,
            };
            ("MIPS", Some(q), oci)
        }
        elf::EM_LOONGARCH => ("LoongArch", Some("loongarch64"), Some("linux/loong64")),
        elf::EM_SPARCV9 => ("SPARC V9", Some("sparc64"), None),
        elf::EM_SPARC32PLUS => ("SPARC32+", Some("sparc32plus"), None),
        elf::EM_SPARC => ("SPARC", Some("sparc"), None),
        elf::EM_68K => ("Motorola 68000", Some("m68k"), None),
        elf::EM_SH => ("SuperH", Some(if le { "sh4" } else { "sh4eb" }), None),
        elf::EM_ALPHA => ("Alpha", Some("alpha"), None),
        elf::EM_PARISC => ("PA-RISC", Some("hppa"), None),
        elf::EM_XTENSA => ("Xtensa", Some(if le { "xtensa" } else { "xtensaeb" }), None),
        elf::EM_MICROBLAZE => (
            "MicroBlaze",
            Some(if le { "microblazeel" } else { "microblaze" }),
            None,
        ),
        elf::EM_OPENRISC => ("OpenRISC", Some("or1k"), None),
        elf::EM_HEXAGON => ("Hexagon", Some("hexagon"), None),
        _ => return (format!("machine {machine:#x}"), None, None),
    };
    (name.to_string(), qemu, oci.map(str::to_string))
}

/// ABI details encoded in `e_flags`.
pub fn abi_from_flags(machine: u16, class: u8, flags: u32) -> Option<String> {
    match machine {
        elf::EM_ARM => {
            let eabi = (flags & elf::EF_ARM_EABIMASK) >> 24;
            let float = match arm_float(flags) {
                Some(true) => "hard-float",
                Some(false) => "soft-float",
                None => "float ABI unspecified",
            };
            Some(if eabi == 0 {
                "OABI (pre-EABI)".to_string()
            } else {
                format!("EABI{eabi} {float}")
            })
        }
        elf::EM_MIPS | elf::EM_MIPS_RS3_LE => Some(
            if class == 64 {
                "n64"
            } else if flags & elf::EF_MIPS_ABI2 != 0 {
                "n32"
            } else {
                "o32"
            }
            .to_string(),
        ),
        elf::EM_RISCV => {
            let float = match flags & elf::EF_RISCV_FLOAT_ABI {
                elf::EF_RISCV_FLOAT_ABI_SOFT => "",
                elf::EF_RISCV_FLOAT_ABI_SINGLE => "f",
                elf::EF_RISCV_FLOAT_ABI_DOUBLE => "d",
                _ => "q",
            };
            let base = if class == 64 { "lp64" } else { "ilp32" };
            let e = if flags & elf::EF_RISCV_RVE != 0 {
                "e"
            } else {
                ""
            };
            let rvc = if flags & elf::EF_RISCV_RVC != 0 {
                ", RVC"
            } else {
                ""
            };
            Some(format!("{base}{e}{float}{rvc}"))
        }
        _ => None,
    }
}

/// Parses an ELF image. `data` is a byte slice in tests and a lazily read file in doctor.
pub fn parse<'data, R: ReadRef<'data>>(data: R) -> Result<ElfFacts, ElfError> {
    let ident = data
        .read_bytes_at(0, 16)
        .map_err(|_| ElfError("truncated: shorter than the 16-byte ELF identification".into()))?;
    if ident[..4] != elf::ELFMAG {
        return Err(ElfError("no ELF magic".into()));
    }
    match ident[4] {
        elf::ELFCLASS32 => parse_as::<elf::FileHeader32<Endianness>, R>(data),
        elf::ELFCLASS64 => parse_as::<elf::FileHeader64<Endianness>, R>(data),
        c => Err(ElfError(format!(
            "invalid ELF class byte {c} (expected 1 or 2)"
        ))),
    }
}

fn bad(what: &str) -> impl Fn(object::read::Error) -> ElfError + '_ {
    move |e| ElfError(format!("{what}: {e}"))
}

fn parse_as<'data, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'data>>(
    data: R,
) -> Result<ElfFacts, ElfError> {
    let header = Elf::parse(data).map_err(bad("ELF header"))?;
    let endian = header.endian().map_err(bad("ELF header"))?;
    let class = if header.is_type_64() { 64 } else { 32 };
    let le = header.is_little_endian();
    let machine = header.e_machine(endian);
    let e_flags = header.e_flags(endian);
    let e_type = header.e_type(endian);
    let (machine_name, qemu_arch, platform) = machine_info(machine, class, le, e_flags);
    let phdrs = header
        .program_headers(endian, data)
        .map_err(bad("program headers"))?;
    let mut facts = ElfFacts {
        class,
        little_endian: le,
        machine,
        machine_name,
        osabi: header.e_ident().os_abi,
        e_type,
        e_flags,
        abi: abi_from_flags(machine, class, e_flags),
        linkage: Linkage::Static,
        interp: None,
        needed: vec![],
        rpath: vec![],
        runpath: vec![],
        soname: None,
        min_load_align: None,
        x86_isa_level: None,
        aarch64_features: None,
        go_version: None,
        is_go: false,
        linux_abi_tag: false,
        qemu_arch: qemu_arch.map(str::to_string),
        platform,
    };
    let mut dynamic = None;
    let mut flags_1 = 0u32;
    for ph in phdrs {
        let (_, size) = ph.file_range(endian);
        let p_type = ph.p_type(endian);
        if size > MAX_SEGMENT
            && matches!(
                p_type,
                elf::PT_INTERP | elf::PT_DYNAMIC | elf::PT_NOTE | elf::PT_GNU_PROPERTY
            )
        {
            return Err(ElfError(format!(
                "program header of type {p_type:#x} claims a {size}-byte segment; the file is corrupt"
            )));
        }
        match p_type {
            elf::PT_LOAD => {
                let align: u64 = ph.p_align(endian).into();
                facts.min_load_align = Some(facts.min_load_align.map_or(align, |a| a.min(align)));
            }
            elf::PT_INTERP => {
                let bytes = ph
                    .interpreter(endian, data)
                    .map_err(bad("PT_INTERP"))?
                    .unwrap_or_default();
                facts.interp = Some(String::from_utf8_lossy(bytes).into_owned());
            }
            elf::PT_DYNAMIC => dynamic = Some(ph),
            elf::PT_NOTE | elf::PT_GNU_PROPERTY => {
                read_notes::<Elf, R>(&mut facts, ph, endian, data)?
            }
            _ => {}
        }
    }
    if let Some(ph) = dynamic {
        let entries = ph
            .dynamic(endian, data)
            .map_err(bad("PT_DYNAMIC"))?
            .unwrap_or_default();
        flags_1 = read_dynamic::<Elf, R>(&mut facts, entries, phdrs, endian, data)?;
    }
    facts.linkage = match (e_type, &facts.interp, dynamic.is_some()) {
        (_, Some(_), _) => Linkage::Dynamic,
        (elf::ET_DYN, None, _) if flags_1 & elf::DF_1_PIE != 0 => Linkage::StaticPie,
        (elf::ET_DYN, None, _) => Linkage::SharedLibrary,
        _ => Linkage::Static,
    };
    if facts.is_go {
        facts.go_version = go_version::<Elf, R>(header, phdrs, endian, data);
    }
    Ok(facts)
}

fn read_notes<'data, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'data>>(
    facts: &mut ElfFacts,
    ph: &Elf::ProgramHeader,
    endian: Endianness,
    data: R,
) -> Result<(), ElfError> {
    // A corrupt note segment is not worth rejecting the binary for; stop reading notes.
    let Ok(Some(mut notes)) = ph.notes(endian, data) else {
        return Ok(());
    };
    while let Ok(Some(note)) = notes.next() {
        if note.name() == b"Go" && note.n_type(endian) == 4 {
            facts.is_go = true;
        }
        // NT_GNU_ABI_TAG: the first word of the description is the OS, 0 for Linux.
        if note.name() == b"GNU" && note.n_type(endian) == elf::NT_GNU_ABI_TAG {
            facts.linux_abi_tag |= note.desc().get(..4) == Some(&[0, 0, 0, 0]);
        }
        let Some(mut props) = note.gnu_properties(endian) else {
            continue;
        };
        while let Ok(Some(p)) = props.next() {
            let Ok(v) = p.data_u32(endian) else { continue };
            match p.pr_type() {
                elf::GNU_PROPERTY_X86_ISA_1_NEEDED if facts.machine == elf::EM_X86_64 => {
                    facts.x86_isa_level = (1..=4u8).rev().find(|l| v & (1 << (l - 1)) != 0);
                }
                elf::GNU_PROPERTY_AARCH64_FEATURE_1_AND if facts.machine == elf::EM_AARCH64 => {
                    facts.aarch64_features = Some(v);
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Maps a virtual address to a file offset through the PT_LOAD segments.
fn vaddr_to_offset<Elf: FileHeader<Endian = Endianness>>(
    phdrs: &[Elf::ProgramHeader],
    endian: Endianness,
    addr: u64,
) -> Option<u64> {
    phdrs.iter().find_map(|ph| {
        if ph.p_type(endian) != elf::PT_LOAD {
            return None;
        }
        let vaddr: u64 = ph.p_vaddr(endian).into();
        let filesz: u64 = ph.p_filesz(endian).into();
        let offset: u64 = ph.p_offset(endian).into();
        (addr >= vaddr && addr - vaddr < filesz).then(|| offset + (addr - vaddr))
    })
}

fn read_dynamic<'data, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'data>>(
    facts: &mut ElfFacts,
    entries: &[Elf::Dyn],
    phdrs: &[Elf::ProgramHeader],
    endian: Endianness,
    data: R,
) -> Result<u32, ElfError> {
    let mut strtab = None;
    let mut strsz = None;
    let mut flags_1 = 0u32;
    let mut wanted: Vec<(u32, u64)> = Vec::new();
    for d in entries {
        let tag: u64 = d.d_tag(endian).into();
        let val: u64 = d.d_val(endian).into();
        match tag as u32 {
            elf::DT_NULL if tag == 0 => break,
            elf::DT_STRTAB => strtab = Some(val),
            elf::DT_STRSZ => strsz = Some(val),
            elf::DT_FLAGS_1 => flags_1 = val as u32,
            elf::DT_NEEDED | elf::DT_RPATH | elf::DT_RUNPATH | elf::DT_SONAME => {
                wanted.push((tag as u32, val))
            }
            _ => {}
        }
    }
    if wanted.is_empty() {
        return Ok(flags_1);
    }
    let (Some(addr), Some(size)) = (strtab, strsz) else {
        return Err(ElfError(
            "dynamic section has strings but no DT_STRTAB/DT_STRSZ".into(),
        ));
    };
    if size > MAX_SEGMENT {
        return Err(ElfError(format!(
            "DT_STRSZ of {size} bytes; the file is corrupt"
        )));
    }
    let offset = vaddr_to_offset::<Elf>(phdrs, endian, addr).ok_or_else(|| {
        ElfError(format!(
            "DT_STRTAB address {addr:#x} is outside every PT_LOAD"
        ))
    })?;
    let table = data.read_bytes_at(offset, size).map_err(|_| {
        ElfError("dynamic string table lies beyond the end of the file (truncated)".into())
    })?;
    for (tag, off) in wanted {
        let s = table
            .get(off as usize..)
            .and_then(|rest| rest.split(|b| *b == 0).next())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(|| ElfError(format!("dynamic string offset {off} outside DT_STRTAB")))?;
        match tag {
            elf::DT_NEEDED => facts.needed.push(s),
            elf::DT_RPATH => facts.rpath.extend(s.split(':').map(str::to_string)),
            elf::DT_RUNPATH => facts.runpath.extend(s.split(':').map(str::to_string)),
            _ => facts.soname = Some(s),
        }
    }
    Ok(flags_1)
}

/// Go's build-info blob: magic, pointer size, flags, then (flag 2) the inline version string.
const GO_BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

fn go_version<'data, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'data>>(
    header: &Elf,
    phdrs: &[Elf::ProgramHeader],
    endian: Endianness,
    data: R,
) -> Option<String> {
    let mut starts: Vec<u64> = Vec::new();
    if let Ok(sections) = header.sections(endian, data) {
        if let Some((_, s)) = sections.section_by_name(endian, b".go.buildinfo") {
            use object::read::elf::SectionHeader;
            starts.push(s.sh_offset(endian).into());
        }
    }
    // Without section headers the blob starts the first writable segment.
    starts.extend(
        phdrs
            .iter()
            .filter(|p| p.p_type(endian) == elf::PT_LOAD && p.p_flags(endian) & elf::PF_W != 0)
            .map(|p| p.p_offset(endian).into()),
    );
    let file_len = data.len().ok()?;
    starts.into_iter().find_map(|off| {
        let want = (32 + 10 + 64u64).min(file_len.checked_sub(off)?);
        let blob = data.read_bytes_at(off, want).ok()?;
        go_version_from_blob(blob)
    })
}

/// Decodes the version from a build-info blob (Go ≥ 1.18 inline format).
pub fn go_version_from_blob(blob: &[u8]) -> Option<String> {
    if !blob.starts_with(GO_BUILDINFO_MAGIC) || blob.get(15)? & 2 == 0 {
        return None;
    }
    let rest = blob.get(32..)?;
    let (mut len, mut shift, mut used) = (0usize, 0u32, 0usize);
    for b in rest.iter().take(5) {
        used += 1;
        len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let v = rest.get(used..used + len)?;
    let v = std::str::from_utf8(v).ok()?;
    v.starts_with("go").then(|| v.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "elf_tests.rs"]
mod tests;
