//! What Linux's ELF loader (fs/binfmt_elf.c) refuses or dies on, as a pure model over the
//! file's bytes: program-header table limits, PT_INTERP size and termination, PT_LOAD sizes
//! and offsets, and an entry point backed by the file. The native loader reads the header in
//! the host's own layout and ignores the identity bytes after the magic, so this model is
//! judged both in that layout and in the layout the identity bytes declare (for emulators).

use object::elf;
use object::ReadRef;

/// The kernel's limit on the program-header table (fs/binfmt_elf.c `load_elf_phdrs`).
const MAX_PHDR_TABLE: u64 = 65536;
/// PATH_MAX: the longest PT_INTERP the kernel reads.
const PATH_MAX: u64 = 4096;
/// Offsets in mmap must agree with addresses modulo the smallest page Linux uses.
const PAGE: u64 = 4096;

/// How the header is read: 32/64-bit, little/big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub class64: bool,
    pub le: bool,
}

impl Layout {
    /// The layout the host's native loader reads for `machine` (32-bit machines use the
    /// compat loader); the byte order is the host's.
    pub fn native_for(machine: u16) -> Layout {
        Layout {
            class64: !matches!(machine, elf::EM_386 | 6 | elf::EM_ARM),
            le: cfg!(target_endian = "little"),
        }
    }
    /// The layout the identity bytes declare, if they declare a valid one.
    pub fn declared(ident: &[u8]) -> Option<Layout> {
        let class64 = match *ident.get(4)? {
            elf::ELFCLASS32 => false,
            elf::ELFCLASS64 => true,
            _ => return None,
        };
        let le = match *ident.get(5)? {
            elf::ELFDATA2LSB => true,
            elf::ELFDATA2MSB => false,
            _ => return None,
        };
        Some(Layout { class64, le })
    }
    fn word(self) -> u64 {
        if self.class64 {
            8
        } else {
            4
        }
    }
    fn phentsize(self) -> u64 {
        if self.class64 {
            56
        } else {
            32
        }
    }
    fn ehsize(self) -> u64 {
        if self.class64 {
            64
        } else {
            52
        }
    }
    fn task_size(self) -> u64 {
        if self.class64 {
            1 << 47
        } else {
            1 << 32
        }
    }
}

/// Whose loader reads the file: Linux's (native programs) or an emulator's (qemu-user, for
/// programs a binfmt_misc handler runs). qemu 7.2 maps a PT_LOAD with more bytes in the file
/// than in memory and reads a PT_INTERP longer than PATH_MAX; the kernel refuses both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    Kernel,
    Emulator,
}

/// Reads little- or big-endian integers of 2, 4 or 8 bytes.
fn num(b: &[u8], le: bool) -> u64 {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate() {
        let shift = if le { i } else { b.len() - 1 - i };
        v |= u64::from(*byte) << (8 * shift);
    }
    v
}

/// `e_machine` read in `le` byte order from the first bytes of a file.
pub fn raw_machine(header: &[u8], le: bool) -> Option<u16> {
    header.get(18..20).map(|b| num(b, le) as u16)
}

/// One program header, with the fields the loader uses.
#[derive(Debug, Clone, Copy)]
struct Phdr {
    p_type: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

struct Reader<'a, R> {
    data: R,
    lay: Layout,
    loader: Loader,
    len: u64,
    _p: std::marker::PhantomData<&'a ()>,
}

impl<'a, R: ReadRef<'a>> Reader<'a, R> {
    fn at(&self, off: u64, size: u64) -> Option<u64> {
        self.data
            .read_bytes_at(off, size)
            .ok()
            .map(|b| num(b, self.lay.le))
    }
    fn phdr(&self, at: u64) -> Option<Phdr> {
        let w = self.lay.word();
        // 64-bit: type, flags, offset, vaddr, paddr, filesz, memsz; 32-bit: no flags first.
        let base = if self.lay.class64 { at + 8 } else { at + 4 };
        Some(Phdr {
            p_type: self.at(at, 4)? as u32,
            offset: self.at(base, w)?,
            vaddr: self.at(base + w, w)?,
            filesz: self.at(base + 3 * w, w)?,
            memsz: self.at(base + 4 * w, w)?,
        })
    }
}

/// Why the kernel (or an emulator's loader, which checks the same) would refuse the file or
/// kill the new process before the program's first instruction; `Ok` when it loads.
pub fn judge<'a, R: ReadRef<'a>>(data: R, lay: Layout, loader: Loader) -> Result<(), String> {
    let len = data
        .len()
        .map_err(|()| "the file's size cannot be read".to_string())?;
    let r = Reader {
        data,
        lay,
        loader,
        len,
        _p: std::marker::PhantomData,
    };
    if len < lay.ehsize() {
        return Err(format!(
            "truncated: the file has {len} bytes, fewer than the {}-byte ELF header",
            lay.ehsize()
        ));
    }
    let version = r.at(6, 1).unwrap_or(0);
    if loader == Loader::Emulator && version != 1 {
        return Err(format!("its ELF identity bytes are damaged (EI_VERSION is {version}, not 1): emulators check that byte, and binfmt_misc entries match it (exec format error)"));
    }
    let w = lay.word();
    let field = |off: u64, size: u64| r.at(off, size).unwrap_or(0);
    let entry = field(24, w);
    let phoff = field(24 + w, w);
    let phentsize = field(24 + 3 * w + 6, 2);
    let phnum = field(24 + 3 * w + 8, 2);
    if phentsize != lay.phentsize() {
        return Err(format!("e_phentsize is {phentsize}, but the kernel accepts only {} (the size of one {}-bit program header): exec format error", lay.phentsize(), if lay.class64 { 64 } else { 32 }));
    }
    if phnum == 0 {
        return Err("e_phnum is 0: the file has no program headers, so nothing can be loaded; the kernel refuses it (exec format error)".into());
    }
    let table = phnum * phentsize;
    if table > MAX_PHDR_TABLE {
        return Err(format!("e_phnum is {phnum}: the program-header table would take {table} bytes, more than the kernel's limit of {MAX_PHDR_TABLE} (exec format error)"));
    }
    if phoff.checked_add(table).is_none_or(|end| end > len) {
        return Err(format!("the program-header table (e_phoff {phoff:#x}, {table} bytes) reaches past the end of the {len}-byte file: the kernel fails with an I/O error (truncated file or corrupt e_phoff)"));
    }
    let phdrs: Vec<Phdr> = (0..phnum)
        .filter_map(|i| r.phdr(phoff + i * phentsize))
        .collect();
    segments_ok(&r, entry, &phdrs).map_err(|e| {
        format!("{e} (read from the program-header table at e_phoff {phoff:#x}, e_phnum {phnum})")
    })
}

fn segments_ok<'a, R: ReadRef<'a>>(
    r: &Reader<'a, R>,
    entry: u64,
    phdrs: &[Phdr],
) -> Result<(), String> {
    if let Some(i) = phdrs.iter().find(|p| p.p_type == elf::PT_INTERP) {
        interp_ok(r, i)?;
    }
    let loads: Vec<&Phdr> = phdrs.iter().filter(|p| p.p_type == elf::PT_LOAD).collect();
    for (n, p) in loads.iter().enumerate() {
        load_ok(r, n, p)?;
    }
    entry_ok(r, entry, &loads)
}

fn interp_ok<'a, R: ReadRef<'a>>(r: &Reader<'a, R>, p: &Phdr) -> Result<(), String> {
    let max = match r.loader {
        Loader::Kernel => PATH_MAX,
        Loader::Emulator => u64::from(u32::MAX),
    };
    if !(2..=max).contains(&p.filesz) {
        return Err(format!("PT_INTERP is {} bytes long; the kernel accepts 2 to {PATH_MAX} (PATH_MAX) and refuses the file (exec format error)", p.filesz));
    }
    let bytes = r.data.read_bytes_at(p.offset, p.filesz).map_err(|()| {
        format!("PT_INTERP (offset {:#x}, {} bytes) reaches past the end of the {}-byte file: the kernel fails with an I/O error", p.offset, p.filesz, r.len)
    })?;
    if bytes.last() != Some(&0) {
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned();
        return Err(format!("PT_INTERP {shown:?} is not NUL-terminated at its last byte: the kernel refuses the file (exec format error)"));
    }
    Ok(())
}

fn load_ok<'a, R: ReadRef<'a>>(r: &Reader<'a, R>, n: usize, p: &Phdr) -> Result<(), String> {
    let what = format!(
        "PT_LOAD #{n} (offset {:#x}, address {:#x}, {} bytes in the file, {} in memory)",
        p.offset, p.vaddr, p.filesz, p.memsz
    );
    if p.filesz > p.memsz && r.loader == Loader::Kernel {
        return Err(format!(
            "{what} has more bytes in the file than in memory: the kernel refuses it (EINVAL)"
        ));
    }
    if p.vaddr
        .checked_add(p.memsz)
        .is_none_or(|end| end > r.lay.task_size())
    {
        return Err(format!(
            "{what} reaches beyond the user address space: the kernel refuses it (EINVAL)"
        ));
    }
    if p.offset % PAGE != p.vaddr % PAGE {
        return Err(format!("{what}: the offset and address differ modulo the {PAGE}-byte page, so it cannot be mapped (EINVAL)"));
    }
    // The kernel zeroes the rest of the last file-backed page when memory extends past the
    // file part (.bss); a page beyond the end of the file faults and kills the process.
    let end = p.offset.saturating_add(p.filesz);
    if p.memsz > p.filesz && p.filesz > 0 && !end.is_multiple_of(PAGE) && end / PAGE * PAGE >= r.len
    {
        return Err(format!("{what} ends at byte {end:#x}, beyond the end of the {}-byte file (truncated?): the kernel cannot clear its last page and kills the process (SIGSEGV)", r.len));
    }
    Ok(())
}

fn entry_ok<'a, R: ReadRef<'a>>(
    r: &Reader<'a, R>,
    entry: u64,
    loads: &[&Phdr],
) -> Result<(), String> {
    if loads.is_empty() {
        return Err(
            "no PT_LOAD segment: nothing of the program is mapped, so it dies at once (SIGSEGV)"
                .into(),
        );
    }
    let Some((n, p)) = loads
        .iter()
        .enumerate()
        .find(|(_, p)| entry >= p.vaddr && entry - p.vaddr < p.filesz)
    else {
        return Err(format!("the entry point {entry:#x} lies in no PT_LOAD's file contents: the first instruction is not there and the process dies (SIGSEGV)"));
    };
    let at = p.offset.saturating_add(entry - p.vaddr);
    if at >= r.len {
        return Err(format!("the entry point {entry:#x}, in PT_LOAD #{n} (offset {:#x}), is at byte {at:#x}, past the end of the {}-byte file (truncated, or a corrupt p_offset): the process dies at its first instruction (SIGBUS)", p.offset, r.len));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::doctor::testelf::{build, Spec};

    const LE64: Layout = Layout {
        class64: true,
        le: true,
    };

    #[test]
    fn a_well_formed_program_loads() {
        assert_eq!(
            judge(&build(&Spec::new(62))[..], LE64, Loader::Kernel),
            Ok(())
        );
        assert_eq!(
            judge(&build(&Spec::aarch64_dynamic())[..], LE64, Loader::Emulator),
            Ok(())
        );
    }

    #[test]
    fn no_program_headers_is_refused() {
        let mut b = build(&Spec::new(62));
        b[56] = 0;
        let e = judge(&b[..], LE64, Loader::Kernel).unwrap_err();
        assert!(e.contains("e_phnum is 0"), "{e}");
    }

    #[test]
    fn unterminated_or_oversize_interpreter_is_refused() {
        let mut b = build(&Spec::aarch64_dynamic());
        let interp = b.windows(4).position(|w| w == b"/lib").unwrap();
        let nul = interp + b[interp..].iter().position(|c| *c == 0).unwrap();
        b[nul] = b'x';
        assert!(judge(&b[..], LE64, Loader::Kernel)
            .unwrap_err()
            .contains("not NUL-terminated"));
    }

    #[test]
    fn truncation_and_bad_loads_are_refused() {
        let b = build(&Spec::new(62));
        assert!(judge(&b[..40], LE64, Loader::Kernel)
            .unwrap_err()
            .contains("truncated"));
        let mut m = b.clone();
        // PT_LOAD #0's p_offset (phdr at 64, offset field at 72): misaligned by one byte.
        m[72] = 1;
        assert!(judge(&m[..], LE64, Loader::Kernel)
            .unwrap_err()
            .contains("modulo"));
        let mut m = b.clone();
        // One byte more in the file than in memory: the kernel refuses it, qemu maps it.
        m[64 + 32..64 + 40].copy_from_slice(&(b.len() as u64 + 1).to_le_bytes());
        let e = judge(&m[..], LE64, Loader::Kernel).unwrap_err();
        assert!(e.contains("more bytes in the file"), "{e}");
        assert_eq!(judge(&m[..], LE64, Loader::Emulator), Ok(()));
    }

    #[test]
    fn identity_layout_and_raw_machine() {
        let b = build(&Spec::new(183));
        assert_eq!(Layout::declared(&b), Some(LE64));
        assert_eq!(Layout::declared(&[0x7f, b'E', b'L', b'F', 3, 1]), None);
        assert_eq!(raw_machine(&b, true), Some(183));
        assert!(!Layout::native_for(3).class64 && Layout::native_for(62).class64);
    }
}
