//! Runs every probe through its qemu-user binary directly (no binfmt_misc) and, on x86, natively.
#![allow(clippy::unwrap_used)] // tests may unwrap (see the brief); a failure is the assertion

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use binfmtd::probe::{exit_program, supported_arches};

/// The `qemu-*-static` binaries of Debian's qemu-user-static 7.2 that run our arches (it also
/// ships nios2, which has no binfmt magic and so no probe). Under CI a missing one fails.
const DEBIAN_7_2_BINARIES: &[&str] = &[
    "aarch64",
    "aarch64_be",
    "alpha",
    "arm",
    "armeb",
    "cris",
    "hexagon",
    "hppa",
    "i386",
    "loongarch64",
    "m68k",
    "microblaze",
    "microblazeel",
    "mips",
    "mips64",
    "mips64el",
    "mipsel",
    "mipsn32",
    "mipsn32el",
    "or1k",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv32",
    "riscv64",
    "s390x",
    "sh4",
    "sh4eb",
    "sparc",
    "sparc32plus",
    "sparc64",
    "x86_64",
    "xtensa",
    "xtensaeb",
];

/// QEMU builds no `qemu-i486`: its own binfmt script points i486 at qemu-i386, which
/// accepts EM_486.
fn qemu_binary_arch(arch: &str) -> &str {
    if arch == "i486" {
        "i386"
    } else {
        arch
    }
}

fn qemu_dir() -> PathBuf {
    std::env::var_os("BINFMTD_TEST_QEMU_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin"))
}

fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

fn write_probe(dir: &Path, arch: &str, code: u8) -> PathBuf {
    let path = dir.join(format!("probe-{arch}-{code}"));
    std::fs::write(&path, exit_program(arch, code).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Executes a freshly written file. Another test thread's fork may briefly hold a copy of
/// our write descriptor (ETXTBSY), so that error is retried.
fn run_native(path: &Path) -> std::io::Result<(ExitStatus, String)> {
    let mut tries = 0;
    loop {
        match run(Command::new(path)) {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// Runs `cmd` with a deadline; returns its status and stderr.
fn run(mut cmd: Command) -> std::io::Result<(ExitStatus, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                e.read_to_string(&mut err)?;
            }
            return Ok((status, err));
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            panic!("{cmd:?} still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn every_probe_exits_with_its_code_under_qemu() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let mut passed = 0;
    for arch in supported_arches() {
        let bin_arch = qemu_binary_arch(arch);
        let qemu = qemu_dir().join(format!("qemu-{bin_arch}-static"));
        if !qemu.is_file() {
            if under_ci() && DEBIAN_7_2_BINARIES.contains(&bin_arch) {
                failures.push(format!("{arch}: {} is missing", qemu.display()));
            } else {
                skipped.push(*arch);
            }
            continue;
        }
        for code in [42u8, 7, 200] {
            let probe = write_probe(tmp.path(), arch, code);
            let mut cmd = Command::new(&qemu);
            cmd.arg("-strace").arg(&probe);
            match run(cmd) {
                Ok((st, err)) => {
                    if st.code() != Some(i32::from(code)) {
                        failures.push(format!("{arch}: want exit {code}, got {st}: {err}"));
                    } else if !err.contains(&format!("exit_group({code})")) {
                        failures.push(format!("{arch}: no exit_group({code}) in strace: {err}"));
                    }
                }
                Err(e) => failures.push(format!("{arch}: cannot run {}: {e}", qemu.display())),
            }
        }
        passed += 1;
    }
    if !skipped.is_empty() {
        eprintln!(
            "skipped, no qemu-*-static in {}: {skipped:?}",
            qemu_dir().display()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        passed > 0 || !under_ci(),
        "no qemu-user binary found; install qemu-user-static"
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x86_probes_run_natively() {
    let tmp = tempfile::tempdir().unwrap();
    let mut probes = Vec::new();
    for arch in ["x86_64", "i386", "i486"] {
        for code in [42u8, 7] {
            probes.push((arch, code, write_probe(tmp.path(), arch, code)));
        }
    }
    for (arch, code, probe) in probes {
        match run_native(&probe) {
            Ok((st, err)) => assert_eq!(st.code(), Some(i32::from(code)), "{arch}: {err}"),
            // ENOEXEC: a kernel built or booted without IA32 emulation.
            Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) && arch != "x86_64" => {
                assert!(!under_ci(), "{arch}: kernel refuses 32-bit x86: {e}");
                eprintln!("skipped {arch}: kernel has no IA32 emulation ({e})");
            }
            Err(e) => panic!("{arch}: cannot execute {}: {e}", probe.display()),
        }
    }
}
