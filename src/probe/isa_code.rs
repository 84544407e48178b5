//! Machine code of `exit(code)` for each Linux ISA: load the argument and syscall number, trap.
//!
//! Every encoding here was checked against a real assembler or disassembler (GNU as/objdump,
//! llvm-mc), except CRIS (no assembler for it here): its three instruction forms come from the
//! GNU opcodes table's match bits and were checked by running the probe under Debian's
//! qemu-cris-static 7.2 with `-strace` (`exit_group(42)`, exit status 42). Every probe is run
//! under qemu-user by `tests/probes_qemu.rs`. Register conventions are the
//! Linux syscall ABIs; the syscall numbers live in the ISA table (`isa.rs`).

use super::elf::Endian;

/// The instruction sequence family; together with byte order and syscall number it gives
/// the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Asm {
    /// `mov edi, code; mov eax, nr; syscall`.
    X86_64,
    /// `mov ebx, code; mov eax, nr; int 0x80`.
    I386,
    /// `movz x0, code; movz x8, nr; svc 0`. A64 code is little-endian even on aarch64_be.
    Aarch64,
    /// EABI: `mov r0, code; mov r7, nr; svc 0`. Little-endian words: armeb uses BE8.
    Arm,
    /// `addiu a0, zero, code; addiu v0, zero, nr; syscall`.
    Mips,
    /// `li r3, code; li r0, nr; sc`.
    Ppc,
    /// ELFv1 ppc64: a function descriptor (entry, TOC, environment), then [`Asm::Ppc`] code.
    Ppc64Descriptor,
    /// `lghi r2, code; svc nr` (nr < 256 fits the SVC immediate).
    S390x,
    /// `mov code, o0; mov nr, g1; ta 0x10` (32-bit ABI).
    Sparc32,
    /// `mov code, o0; mov nr, g1; ta 0x6d` (64-bit ABI).
    Sparc64,
    /// `move.l #nr, d0; move.l #code, d1; trap #0`.
    M68k,
    /// `mov #code, r4; extu.b r4, r4; mov #nr, r3; extu.b r3, r3; trapa #0x11`.
    Sh,
    /// `lda a0, code(zero); lda v0, nr(zero); call_pal callsys`.
    Alpha,
    /// `ldi code, r26; be,l 0x100(sr2, r0), sr0, r31` with `ldi nr, r20` in the delay slot.
    Hppa,
    /// `li a0, code; li a7, nr; ecall`.
    Riscv,
    /// `ori a0, zero, code; ori a7, zero, nr; syscall 0`.
    LoongArch,
    /// `addik r5, r0, code; addik r12, r0, nr; brki r14, 0x8`.
    MicroBlaze,
    /// `l.addi r3, r0, code; l.addi r11, r0, nr; l.sys 1`.
    Or1k,
    /// `movi a6, code; movi a2, nr; syscall` (24-bit instructions, bit fields mirror per order).
    Xtensa,
    /// Three packets: `{ r0 = #code }`, `{ r6 = #nr }`, `{ trap0(#1) }`.
    Hexagon,
    /// `moveq 0, r10; addq ≤63, r10 ...; moveq 0, r9; addq ≤63, r9 ...; break 13`
    /// (16-bit little-endian instructions; addq takes a 6-bit unsigned immediate).
    Cris,
}

fn words(endian: Endian, ws: &[u32]) -> Vec<u8> {
    ws.iter()
        .flat_map(|w| match endian {
            Endian::Little => w.to_le_bytes(),
            Endian::Big => w.to_be_bytes(),
        })
        .collect()
}

fn halves(endian: Endian, hs: &[u16]) -> Vec<u8> {
    hs.iter()
        .flat_map(|h| match endian {
            Endian::Little => h.to_le_bytes(),
            Endian::Big => h.to_be_bytes(),
        })
        .collect()
}

/// The code bytes. `nr` is the exit syscall number (every table entry is below 8192, the
/// smallest immediate used); `code_address` is where the first byte is loaded.
pub fn exit_code(asm: Asm, endian: Endian, nr: u32, code: u8, code_address: u64) -> Vec<u8> {
    let c = u32::from(code);
    match asm {
        Asm::X86_64 | Asm::I386 => x86(asm == Asm::X86_64, nr, c),
        Asm::Aarch64 => words(
            Endian::Little,
            &[0xd280_0000 | (c << 5), 0xd280_0008 | (nr << 5), 0xd400_0001],
        ),
        Asm::Arm => words(
            Endian::Little,
            &[0xe3a0_0000 | c, 0xe3a0_7000 | nr, 0xef00_0000],
        ),
        Asm::Mips => words(endian, &[0x2404_0000 | c, 0x2402_0000 | nr, 0x0000_000c]),
        Asm::Ppc => words(endian, &[0x3860_0000 | c, 0x3800_0000 | nr, 0x4400_0002]),
        Asm::Ppc64Descriptor => ppc64_descriptor(endian, nr, code, code_address),
        Asm::S390x => vec![0xa7, 0x29, 0x00, code, 0x0a, nr as u8],
        Asm::Sparc32 | Asm::Sparc64 => {
            let trap = if asm == Asm::Sparc32 { 0x10 } else { 0x6d };
            words(
                Endian::Big,
                &[0x9010_2000 | c, 0x8210_2000 | nr, 0x91d0_2000 | trap],
            )
        }
        Asm::M68k => [
            &[0x20, 0x3c][..],
            &nr.to_be_bytes(),
            &[0x22, 0x3c],
            &c.to_be_bytes(),
            &[0x4e, 0x40],
        ]
        .concat(),
        Asm::Sh => halves(
            endian,
            &[
                0xe400 | u16::from(code),
                0x644c,
                0xe300 | (nr as u16 & 0xff),
                0x633c,
                0xc311,
            ],
        ),
        Asm::Alpha => words(
            Endian::Little,
            &[0x221f_0000 | c, 0x201f_0000 | nr, 0x0000_0083],
        ),
        Asm::Hppa => words(
            Endian::Big,
            &[0x341a_0000 | (c << 1), 0xe400_8200, 0x3414_0000 | (nr << 1)],
        ),
        Asm::Riscv => words(
            Endian::Little,
            &[(c << 20) | 0x0513, (nr << 20) | 0x0893, 0x0000_0073],
        ),
        Asm::LoongArch => words(
            Endian::Little,
            &[
                0x0380_0004 | (c << 10),
                0x0380_000b | (nr << 10),
                0x002b_0000,
            ],
        ),
        Asm::MicroBlaze => words(endian, &[0x30a0_0000 | c, 0x3180_0000 | nr, 0xb9cc_0008]),
        Asm::Or1k => words(
            Endian::Big,
            &[0x9c60_0000 | c, 0x9d60_0000 | nr, 0x2000_0001],
        ),
        Asm::Xtensa => xtensa(endian, nr, c),
        Asm::Hexagon => words(
            Endian::Little,
            &[0x7800_c000 | (c << 5), 0x7800_c006 | (nr << 5), 0x5400_c004],
        ),
        Asm::Cris => {
            let mut hs = cris_load(10, c);
            hs.extend(cris_load(9, nr));
            hs.push(0xe93d); // break 13: the Linux syscall trap
            halves(Endian::Little, &hs)
        }
    }
}

/// x86: `mov edi/ebx, code; mov eax, nr; syscall / int 0x80`.
fn x86(x86_64: bool, nr: u32, c: u32) -> Vec<u8> {
    let arg_reg = if x86_64 { 0xbf } else { 0xbb };
    let trap: &[u8] = if x86_64 { &[0x0f, 0x05] } else { &[0xcd, 0x80] };
    [
        &[arg_reg][..],
        &c.to_le_bytes(),
        &[0xb8],
        &nr.to_le_bytes(),
        trap,
    ]
    .concat()
}

/// ELFv1 ppc64: the 24-byte function descriptor `e_entry` points at, then the code.
fn ppc64_descriptor(endian: Endian, nr: u32, code: u8, code_address: u64) -> Vec<u8> {
    let entry = code_address + 24;
    let mut v = match endian {
        Endian::Little => entry.to_le_bytes().to_vec(),
        Endian::Big => entry.to_be_bytes().to_vec(),
    };
    v.extend_from_slice(&[0; 16]); // TOC and environment pointers: unused
    v.extend(exit_code(Asm::Ppc, endian, nr, code, code_address));
    v
}

/// Xtensa: MOVI (RRI8: op0=2, r=0xa, t=register, s=imm[11:8], imm8=imm[7:0]) twice, then
/// SYSCALL; the bit fields mirror with the byte order.
fn xtensa(endian: Endian, nr: u32, c: u32) -> Vec<u8> {
    let movi = |reg: u8, imm: u32| -> [u8; 3] {
        let hi = ((imm >> 8) & 0xf) as u8;
        let lo = (imm & 0xff) as u8;
        match endian {
            Endian::Little => [(reg << 4) | 0x2, 0xa0 | hi, lo],
            Endian::Big => [0x20 | reg, (hi << 4) | 0xa, lo],
        }
    };
    let syscall: [u8; 3] = match endian {
        Endian::Little => [0x00, 0x50, 0x00],
        Endian::Big => [0x00, 0x05, 0x00],
    };
    [movi(6, c), movi(2, nr), syscall].concat()
}

/// CRIS `moveq 0, rREG` then `addq` steps of at most 63 until the register holds `value`.
fn cris_load(reg: u16, value: u32) -> Vec<u16> {
    let mut hs = vec![0x0240 | (reg << 12)];
    let mut left = value;
    while left > 0 {
        let step = left.min(63);
        hs.push(0x0200 | (reg << 12) | step as u16);
        left -= step;
    }
    hs
}
