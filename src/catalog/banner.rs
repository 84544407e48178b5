//! Reads QEMU's version banner from the binary's read-only data, without running it: the
//! line `qemu-ARCH version N.M.P (...)` that `--version` prints is one string there.

use object::read::elf::{FileHeader, SectionHeader};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// What follows the version line in the banner string.
const NEXT_LINE: &[u8] = b"\nCopyright (c) ";
/// Longest version line accepted.
const MAX_LINE: usize = 256;
/// How much of `.rodata` is read at a time.
const CHUNK: usize = 64 * 1024;

/// The first line QEMU's `--version` prints, read from `path`'s `.rodata`; None when the
/// file is not an ELF with such a banner (then ask the program itself).
pub fn qemu_banner(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let (offset, size) = rodata(&file)?;
    let end = offset.checked_add(size)?;
    let mut at = offset;
    let mut buf = vec![0u8; CHUNK + MAX_LINE];
    while at < end {
        // Each chunk starts MAX_LINE bytes early, so a line across a boundary is whole.
        let start = at.saturating_sub(MAX_LINE as u64).max(offset);
        let len = usize::try_from(end - start).ok()?.min(buf.len());
        let n = file.read_at(&mut buf[..len], start).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(line) = find_line(&buf[..n]) {
            return Some(line);
        }
        at = start + n as u64;
    }
    None
}

/// The file range of `.rodata`, from three small reads: the ELF header, the section
/// headers, and the section-name table.
fn rodata(file: &std::fs::File) -> Option<(u64, u64)> {
    let mut ident = [0u8; 64];
    let n = file.read_at(&mut ident, 0).ok()?;
    match object::FileKind::parse(&ident[..n]).ok()? {
        object::FileKind::Elf64 => {
            section::<object::elf::FileHeader64<object::Endianness>>(file, &ident[..n])
        }
        object::FileKind::Elf32 => {
            section::<object::elf::FileHeader32<object::Endianness>>(file, &ident[..n])
        }
        _ => None,
    }
}

fn section<H: FileHeader<Endian = object::Endianness>>(
    file: &std::fs::File,
    head: &[u8],
) -> Option<(u64, u64)> {
    let read = |offset: u64, len: usize| -> Option<Vec<u8>> {
        let mut v = vec![0u8; len];
        (file.read_at(&mut v, offset).ok()? == len).then_some(v)
    };
    let h = H::parse(head).ok()?;
    let e = h.endian().ok()?;
    let count = usize::from(h.e_shnum(e));
    let entry = std::mem::size_of::<H::SectionHeader>();
    let table = read(h.e_shoff(e).into(), count.checked_mul(entry)?)?;
    let headers: &[H::SectionHeader] = object::pod::slice_from_all_bytes(&table).ok()?;
    let names = headers.get(usize::from(h.e_shstrndx(e)))?;
    let (names_at, names_len) = names.file_range(e)?;
    let names = read(names_at, usize::try_from(names_len).ok()?)?;
    headers.iter().find_map(|s| {
        let at = usize::try_from(s.sh_name(e)).ok()?;
        let name = names.get(at..)?.split(|b| *b == 0).next()?;
        (name == b".rodata").then(|| s.file_range(e)).flatten()
    })
}

/// The version line before the first `\nCopyright (c) ` whose line is a QEMU banner (pure).
pub fn find_line(data: &[u8]) -> Option<String> {
    let mut from = 0;
    while let Some(p) = find(&data[from..], NEXT_LINE).map(|p| p + from) {
        let head = &data[p.saturating_sub(MAX_LINE)..p];
        let line_start = head
            .iter()
            .rposition(|b| *b == 0 || *b == b'\n')
            .map(|i| i + 1);
        if let Some(s) = line_start {
            if let Ok(line) = std::str::from_utf8(&head[s..]) {
                if line.starts_with("qemu-") && super::discover::qemu_version(line).is_some() {
                    return Some(line.to_string());
                }
            }
        }
        from = p + 1;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_lines_table() {
        let cases: [(&[u8], Option<&str>); 5] = [
            (
                b"\0x\0qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7)\nCopyright (c) 2003",
                Some("qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7)"),
            ),
            // Another program's copyright line first, then QEMU's.
            (
                b"\0GNU thing\nCopyright (c) 1999\0qemu-riscv64 version 9.1.3\nCopyright (c) 2003",
                Some("qemu-riscv64 version 9.1.3"),
            ),
            (b"\0qemu-arm has no version\nCopyright (c) 2003", None),
            (b"qemu-arm version 8.0\n", None),
            (b"", None),
        ];
        for (data, want) in cases {
            assert_eq!(
                find_line(data).as_deref(),
                want,
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn the_banner_is_what_version_prints_for_every_installed_qemu() {
        let Ok(dir) = std::fs::read_dir("/usr/bin") else {
            return;
        };
        let mut seen = 0;
        for path in dir.flatten().map(|e| e.path()) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if !(name.starts_with("qemu-") && name.ends_with("-static")) {
                continue;
            }
            let asked = crate::sys::version::first_line(
                &path,
                &["--version"],
                std::time::Duration::from_secs(10),
            );
            assert_eq!(qemu_banner(&path), asked, "{}", path.display());
            seen += 1;
        }
        eprintln!("compared {seen} qemu binaries");
    }
}
