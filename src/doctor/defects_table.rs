//! The rows of the known-defects table: one public report each, with the matching facts and the fix.

use super::defects::{Defect, Trait, Versions, ANY, QEMU, ROSETTA};
use crate::catalog::Translator;

/// The table. Keep rows few and sourced; a row that cannot cite a public report does not belong.
pub const DEFECTS: &[Defect] = &[
    // Go 1.23 starts processes through pidfd; os/exec fails ("fork/exec ... invalid argument")
    // or hangs in waitid under QEMU user mode >= 7.2 and < 8.0 (Debian bookworm's qemu).
    // Backport of golang/go#68976.
    Defect {
        key: "go-pidfd-qemu-7.2",
        translators: QEMU,
        versions: Versions::Range((7, 2, 0), (8, 0, 0)),
        arches: &[],
        kernel: None,
        needs: Trait::Go { from: (1, 23, 0), until: (1, 23, 2) },
        summary: "Go 1.23.0/1.23.1 os/exec (pidfd) fails or hangs under qemu-user 7.2.x",
        fix: "use a qemu-user of version 8.0 or newer (or older than 7.2), or rebuild with Go 1.23.2 or newer",
        source: "https://github.com/golang/go/issues/69259",
    },
    // "runtime: 1.23 hangs when running under qemu-user [bisected]": the go toolchain itself
    // hangs under Fedora 41's qemu 9.1.
    Defect {
        key: "go-1.23-hang-qemu",
        translators: QEMU,
        versions: Versions::Range((7, 2, 0), (9, 2, 0)),
        arches: &[],
        kernel: None,
        needs: Trait::Go { from: (1, 23, 0), until: (1, 24, 0) },
        summary: "Go 1.23 programs are reported to hang under qemu-user (golang/go#70329)",
        fix: "if it hangs, run `binfmtd doctor --pid PID` to see the blocked syscall; try Go 1.22 or 1.24, or a newer qemu-user",
        source: "https://github.com/golang/go/issues/70329",
    },
    // "runtime: async preemption support on ARM64 breaks ARM64 on QEMU": since Go 1.14,
    // signal-based preemption crashes or stalls arm64 programs under qemu-user.
    Defect {
        key: "go-async-preemption-qemu-arm64",
        translators: QEMU,
        versions: Versions::Range(ANY.0, ANY.1),
        arches: &["aarch64"],
        kernel: None,
        needs: Trait::Go { from: (1, 14, 0), until: (u32::MAX, 0, 0) },
        summary: "Go's asynchronous preemption (Go 1.14+) crashes or stalls arm64 programs under qemu-user",
        fix: "set GODEBUG=asyncpreemptoff=1 in the container's environment (and GOMAXPROCS=1 if it still hangs)",
        source: "https://github.com/golang/go/issues/36981",
    },
    // "runtime: go sometimes hangs under qemu-arm-static since 1.21": `go env` loops hang in
    // an arm32v7 alpine container under Debian's qemu-user-static.
    Defect {
        key: "go-1.21-hang-qemu-arm",
        translators: QEMU,
        versions: Versions::Range(ANY.0, ANY.1),
        arches: &["arm"],
        kernel: None,
        needs: Trait::Go { from: (1, 21, 0), until: (u32::MAX, 0, 0) },
        summary: "Go 1.21+ programs sometimes hang under qemu-arm (golang/go#67355)",
        fix: "set GODEBUG=asyncpreemptoff=1, or build arm/v7 Go binaries on the build platform (FROM --platform=$BUILDPLATFORM, GOARCH=arm)",
        source: "https://github.com/golang/go/issues/67355",
    },
    // "Segmentation fault calling ldconfig on ubuntu 22.04": qemu 9.2.0 (tonistiigi/binfmt)
    // segfaults in ldconfig in arm64 images; the alignment fixes are in qemu 9.2.2
    // (multiarch/qemu-user-static#212 lists the two commits).
    Defect {
        key: "ldconfig-segv-qemu-arm64",
        translators: QEMU,
        versions: Versions::Range((5, 0, 0), (9, 2, 2)),
        arches: &["aarch64"],
        kernel: None,
        needs: Trait::Program("ldconfig"),
        summary: "ldconfig (libc-bin's trigger) dies with \"qemu: uncaught target signal 11\" in arm64 images under qemu-user before 9.2.2",
        fix: "use qemu-user 9.2.2 or newer (e.g. `docker run --privileged tonistiigi/binfmt --install arm64` with a 9.2.2+ tag)",
        source: "https://github.com/tonistiigi/binfmt/issues/231",
    },
    // "NPM install stucks with node:20": npm/yarn hang in buildx builds for linux/arm/v6,
    // arm/v7 and s390x; arm64, ppc64le and amd64 are fine.
    Defect {
        key: "node-hang-qemu-arm-s390x",
        translators: QEMU,
        versions: Versions::Range(ANY.0, ANY.1),
        arches: &["arm", "s390x"],
        kernel: None,
        needs: Trait::Node,
        summary: "Node.js 20+ (npm, yarn) hangs at full CPU under qemu-arm and qemu-s390x",
        fix: "run npm/yarn on the build platform (FROM --platform=$BUILDPLATFORM) and copy the result, or stay on Node 18 for these platforms",
        source: "https://github.com/nodejs/docker-node/issues/1946",
    },
    // "\"Use Rosetta\": Certain node.js/amd64 workloads cause container to become
    // unresponsive/100% CPU"; disabling Rosetta (qemu instead) makes them work.
    Defect {
        key: "node-spin-rosetta",
        translators: ROSETTA,
        versions: Versions::All,
        arches: &[],
        kernel: None,
        needs: Trait::Node,
        summary: "some Node.js workloads spin at 100% CPU forever under Rosetta",
        fix: "switch this platform to qemu-x86_64 (`binfmtd install qemu-x86_64 --no-prefer-rosetta --force`), or use an arm64 image",
        source: "https://github.com/docker/for-mac/issues/6998",
    },
    // "Emulated x86 and x64 .NET 8 on AARCH64 can't restore project": `dotnet restore`
    // hangs until DOTNET_EnableWriteXorExecute=0; fixed in .NET 9 and a .NET 8 servicing.
    Defect {
        key: "dotnet-w-x-hang",
        translators: &[Translator::Qemu, Translator::Rosetta],
        versions: Versions::All,
        arches: &["x86_64", "i386"],
        kernel: None,
        needs: Trait::Dotnet,
        summary: ".NET 7/8 under x86-64 emulation hangs (dotnet restore, dotnet new) with W^X enabled",
        fix: "set DOTNET_EnableWriteXorExecute=0 in the container, or update to a .NET 8 servicing release or .NET 9",
        source: "https://github.com/dotnet/runtime/issues/97228",
    },
    // "Rosetta results with error for any AMD64 binary": macOS 13's Rosetta aborts on
    // AT_RSEQ_ALIGN (auxv type 28), which Linux passes since 6.3.
    Defect {
        key: "rosetta-auxv-28",
        translators: ROSETTA,
        versions: Versions::All,
        arches: &[],
        kernel: Some(((6, 3, 0), (u32::MAX, 0, 0))),
        needs: Trait::Any,
        summary: "Rosetta from macOS 13 stops every program with \"unhandled auxillary vector type 28\" on Linux 6.3+",
        fix: "update macOS (Rosetta ships with it), or boot the VM with a kernel older than 6.3",
        source: "https://github.com/utmapp/UTM/issues/5567",
    },
    // "MacOS Rosetta broke on latest kernel Fedora 41": Linux 6.13 passes AT_HWCAP3 (auxv
    // type 29) and Rosetta before macOS 26 aborts (podman-machine-os pinned its kernel).
    Defect {
        key: "rosetta-auxv-29",
        translators: ROSETTA,
        versions: Versions::All,
        arches: &[],
        kernel: Some(((6, 13, 0), (u32::MAX, 0, 0))),
        needs: Trait::Any,
        summary: "Rosetta before macOS 26 stops every program with \"unhandled auxillary vector type 29\" on Linux 6.13+",
        fix: "update macOS to 26 or newer, or boot the VM with a 6.12 (or older) kernel",
        source: "https://github.com/lima-vm/lima/issues/3592",
    },
    // "Rosetta failures in guest Linux environment": "assertion failed [hash_table !=
    // nullptr]: Failed to find vdso DT_HASH" after Debian testing moved to Linux 6.11.
    Defect {
        key: "rosetta-vdso-dt-hash",
        translators: ROSETTA,
        versions: Versions::All,
        arches: &[],
        kernel: Some(((6, 11, 0), (u32::MAX, 0, 0))),
        needs: Trait::Any,
        summary: "older Rosetta traps with \"Failed to find vdso DT_HASH\" on Linux 6.11+ kernels whose vDSO has no DT_HASH",
        fix: "update macOS (Rosetta ships with it), or boot the VM with a kernel older than 6.11",
        source: "https://github.com/utmapp/UTM/issues/6771",
    },
    // "Lack of x86_64-v3 support in rosetta": CentOS Stream 10 and UBI 10 print "Fatal glibc
    // error: CPU does not support x86-64-v3" under Rosetta.
    Defect {
        key: "rosetta-x86-64-v3",
        translators: ROSETTA,
        versions: Versions::All,
        arches: &[],
        kernel: None,
        needs: Trait::X86Level(3),
        summary: "x86-64-v3 images (CentOS Stream 10, UBI 10, RHEL 10) stop with \"CPU does not support x86-64-v3\" under Rosetta",
        fix: "run this platform with qemu-x86_64 7.2+ (`binfmtd install qemu-x86_64 --no-prefer-rosetta --force`), or use a v2 image (UBI 9, Stream 9)",
        source: "https://github.com/crc-org/vfkit/issues/265",
    },
    // "Running ldconfig (from libc-bin package) segfaults on arm64v8 (Debian) using
    // qemu-user-static on Ubuntu 20.04": the same ldconfig crash under Ubuntu 20.04's qemu 4.2.
    Defect {
        key: "ldconfig-segv-qemu-4",
        translators: QEMU,
        versions: Versions::Range((4, 0, 0), (5, 0, 0)),
        arches: &["aarch64"],
        kernel: None,
        needs: Trait::Program("ldconfig"),
        summary: "ldconfig segfaults in arm64 Debian images under Ubuntu 20.04's qemu-user-static 4.2",
        fix: "use qemu-user 9.2.2 or newer; as a stopgap, docker run --privileged tonistiigi/binfmt --install arm64",
        source: "https://github.com/moby/moby/issues/43039",
    },
];
