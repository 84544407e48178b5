//! Per-ISA probe table, keyed by QEMU arch name: ELF identity plus the Linux exit syscall.

use super::elf::{self, Class, Endian, Ident};
use super::isa_code::{exit_code, Asm};

/// One ISA the project can build an exit probe for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa {
    /// QEMU's name, as in `qemu-<arch>` handler names.
    pub arch: &'static str,
    pub class: Class,
    pub endian: Endian,
    /// `e_machine`.
    pub machine: u16,
    /// `e_flags`, chosen to select the ABI the handler and QEMU expect.
    pub flags: u32,
    /// Linux `exit_group` syscall number in this ABI.
    pub exit_nr: u32,
    pub asm: Asm,
}

use Class::{Elf32, Elf64};
use Endian::{Big, Little};

const fn isa(
    arch: &'static str,
    class: Class,
    endian: Endian,
    machine: u16,
    flags: u32,
    exit_nr: u32,
    asm: Asm,
) -> Isa {
    Isa {
        arch,
        class,
        endian,
        machine,
        flags,
        exit_nr,
        asm,
    }
}

// e_machine values (ELF gABI and the psABIs).
const EM_SPARC: u16 = 2;
const EM_386: u16 = 3;
const EM_68K: u16 = 4;
const EM_486: u16 = 6;
const EM_MIPS: u16 = 8;
const EM_PARISC: u16 = 15;
const EM_SPARC32PLUS: u16 = 18;
const EM_PPC: u16 = 20;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_ARM: u16 = 40;
const EM_SH: u16 = 42;
const EM_SPARCV9: u16 = 43;
const EM_X86_64: u16 = 62;
const EM_CRIS: u16 = 76;
const EM_OPENRISC: u16 = 92;
const EM_XTENSA: u16 = 94;
const EM_HEXAGON: u16 = 164;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;
const EM_LOONGARCH: u16 = 258;
/// The pre-assignment MicroBlaze number, which QEMU's and Debian's binfmt magic test.
const EM_MICROBLAZE_OLD: u16 = 0xbaab;
const EM_ALPHA: u16 = 0x9026;

// e_flags values.
/// ARM EABI version 5.
const EF_ARM_EABI5: u32 = 0x0500_0000;
/// ARM big-endian code in BE8 layout: data big-endian, instructions little-endian.
const EF_ARM_BE8: u32 = 0x0080_0000;
/// MIPS o32 ABI, MIPS32r2 ISA. EF_MIPS_ABI2 (0x20) clear: binfmt and QEMU read it as o32.
const EF_MIPS_O32_32R2: u32 = 0x7000_1000;
/// MIPS n32 ABI (EF_MIPS_ABI2), MIPS64r2 ISA.
const EF_MIPS_N32_64R2: u32 = 0x8000_0020;
/// MIPS n64 (no ABI bits), MIPS64r2 ISA.
const EF_MIPS_N64_64R2: u32 = 0x8000_0000;
/// ppc64 ELF ABI version 1: `e_entry` points at a function descriptor.
const EF_PPC64_ELFV1: u32 = 1;
/// ppc64 ELF ABI version 2: `e_entry` is code.
const EF_PPC64_ELFV2: u32 = 2;
/// SPARC V8+ (32-bit ABI on a V9 CPU).
const EF_SPARC_32PLUS: u32 = 0x100;
/// PA-RISC 1.1, what Linux hppa toolchains emit.
const EFA_PARISC_1_1: u32 = 0x210;
/// RISC-V double-float ABI (lp64d / ilp32d); no RVC code is used.
const EF_RISCV_FLOAT_ABI_DOUBLE: u32 = 0x4;
/// LoongArch LP64D with object ABI v1.
const EF_LOONGARCH_LP64D_V1: u32 = 0x43;
/// Hexagon V67: a CPU version every QEMU with hexagon accepts (QEMU ≥ 9 rejects 0).
const EF_HEXAGON_MACH_V67: u32 = 0x67;

/// The 34 QEMU user-mode targets, in QEMU's order, then the targets only Debian registers
/// ([`crate::catalog::DEBIAN_ONLY_TARGETS`]).
#[rustfmt::skip]
static TABLE: [Isa; 35] = [
    isa("i386", Elf32, Little, EM_386, 0, 252, Asm::I386),
    isa("i486", Elf32, Little, EM_486, 0, 252, Asm::I386),
    isa("alpha", Elf64, Little, EM_ALPHA, 0, 405, Asm::Alpha),
    isa("arm", Elf32, Little, EM_ARM, EF_ARM_EABI5, 248, Asm::Arm),
    isa("armeb", Elf32, Big, EM_ARM, EF_ARM_EABI5 | EF_ARM_BE8, 248, Asm::Arm),
    isa("sparc", Elf32, Big, EM_SPARC, 0, 188, Asm::Sparc32),
    isa("sparc32plus", Elf32, Big, EM_SPARC32PLUS, EF_SPARC_32PLUS, 188, Asm::Sparc32),
    isa("sparc64", Elf64, Big, EM_SPARCV9, 0, 188, Asm::Sparc64),
    isa("ppc", Elf32, Big, EM_PPC, 0, 234, Asm::Ppc),
    isa("ppc64", Elf64, Big, EM_PPC64, EF_PPC64_ELFV1, 234, Asm::Ppc64Descriptor),
    isa("ppc64le", Elf64, Little, EM_PPC64, EF_PPC64_ELFV2, 234, Asm::Ppc),
    isa("m68k", Elf32, Big, EM_68K, 0, 247, Asm::M68k),
    isa("mips", Elf32, Big, EM_MIPS, EF_MIPS_O32_32R2, 4246, Asm::Mips),
    isa("mipsel", Elf32, Little, EM_MIPS, EF_MIPS_O32_32R2, 4246, Asm::Mips),
    isa("mipsn32", Elf32, Big, EM_MIPS, EF_MIPS_N32_64R2, 6205, Asm::Mips),
    isa("mipsn32el", Elf32, Little, EM_MIPS, EF_MIPS_N32_64R2, 6205, Asm::Mips),
    isa("mips64", Elf64, Big, EM_MIPS, EF_MIPS_N64_64R2, 5205, Asm::Mips),
    isa("mips64el", Elf64, Little, EM_MIPS, EF_MIPS_N64_64R2, 5205, Asm::Mips),
    isa("sh4", Elf32, Little, EM_SH, 0, 252, Asm::Sh),
    isa("sh4eb", Elf32, Big, EM_SH, 0, 252, Asm::Sh),
    isa("s390x", Elf64, Big, EM_S390, 0, 248, Asm::S390x),
    isa("aarch64", Elf64, Little, EM_AARCH64, 0, 94, Asm::Aarch64),
    isa("aarch64_be", Elf64, Big, EM_AARCH64, 0, 94, Asm::Aarch64),
    isa("hppa", Elf32, Big, EM_PARISC, EFA_PARISC_1_1, 222, Asm::Hppa),
    isa("riscv32", Elf32, Little, EM_RISCV, EF_RISCV_FLOAT_ABI_DOUBLE, 94, Asm::Riscv),
    isa("riscv64", Elf64, Little, EM_RISCV, EF_RISCV_FLOAT_ABI_DOUBLE, 94, Asm::Riscv),
    isa("xtensa", Elf32, Little, EM_XTENSA, 0, 119, Asm::Xtensa),
    isa("xtensaeb", Elf32, Big, EM_XTENSA, 0, 119, Asm::Xtensa),
    isa("microblaze", Elf32, Big, EM_MICROBLAZE_OLD, 0, 252, Asm::MicroBlaze),
    isa("microblazeel", Elf32, Little, EM_MICROBLAZE_OLD, 0, 252, Asm::MicroBlaze),
    isa("or1k", Elf32, Big, EM_OPENRISC, 0, 94, Asm::Or1k),
    isa("x86_64", Elf64, Little, EM_X86_64, 0, 231, Asm::X86_64),
    isa("hexagon", Elf32, Little, EM_HEXAGON, EF_HEXAGON_MACH_V67, 94, Asm::Hexagon),
    isa("loongarch64", Elf64, Little, EM_LOONGARCH, EF_LOONGARCH_LP64D_V1, 94, Asm::LoongArch),
    isa("cris", Elf32, Little, EM_CRIS, 0, 252, Asm::Cris),
];

static NAMES: [&str; 35] = {
    let mut names = [""; 35];
    let mut i = 0;
    while i < TABLE.len() {
        names[i] = TABLE[i].arch;
        i += 1;
    }
    names
};

/// The QEMU arch names a probe exists for.
pub fn supported_arches() -> &'static [&'static str] {
    &NAMES
}

/// The table entry for a QEMU arch name.
pub fn lookup(arch: &str) -> Option<&'static Isa> {
    TABLE.iter().find(|i| i.arch == arch)
}

impl Isa {
    pub fn ident(&self) -> Ident {
        Ident {
            class: self.class,
            endian: self.endian,
            machine: self.machine,
            flags: self.flags,
            osabi: 0,
        }
    }

    /// The `exit_group(code)` instructions as loaded at the probe's code address.
    pub fn code(&self, code: u8) -> Vec<u8> {
        exit_code(
            self.asm,
            self.endian,
            self.exit_nr,
            code,
            elf::code_address(self.class),
        )
    }

    /// The complete probe executable.
    pub fn program(&self, code: u8) -> Vec<u8> {
        elf::write_exec(&self.ident(), &self.code(code))
    }
}

/// A static executable for `arch` (QEMU name) that only calls `exit_group(code)`;
/// `None` for an unknown arch.
pub fn exit_program(arch: &str, code: u8) -> Option<Vec<u8>> {
    lookup(arch).map(|i| i.program(code))
}
