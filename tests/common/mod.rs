//! Shared helpers for the integration tests: fixture building, the binary under test, tool checks.
#![allow(dead_code)] // each test crate uses only some of these helpers

pub mod env;
pub mod fault;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// True when running under CI, where a missing prerequisite is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// `<crate>/target/fixtures`, created on first use. Fixtures are cached here between runs.
pub fn fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("fixtures");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create fixture directory {}: {e}", dir.display()));
    dir
}

/// Runs `tests/fixtures/SCRIPT fixtures_dir()` and panics with its output when it fails.
fn run_fixture_script(script: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(script);
    let out = Command::new("sh")
        .arg(&path)
        .arg(fixtures_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}{}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Directory with `hello-{aarch64,riscv64}-{static,dynamic}` and `hello-armhf-dynamic`, each
/// printing `hello from <arch>`. Built once per test process by `tests/fixtures/cross-bins.sh`.
pub fn cross_bins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        run_fixture_script("cross-bins.sh");
        fixtures_dir().join("cross-bins")
    })
}

/// A Debian bookworm arm64 root (debootstrap first stage: `/bin/sh`, the loader and libc).
/// Built once and cached by `tests/fixtures/arm64-root.sh`; needs root and network the first time.
pub fn arm64_root() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        run_fixture_script("arm64-root.sh");
        fixtures_dir().join("arm64-root")
    })
}

/// The `binfmtd` binary cargo built for these tests.
pub fn binfmtd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_binfmtd"))
}

/// Debian package that provides each tool the tests use, for the install hint.
fn package_for(tool: &str) -> &str {
    match tool {
        "aarch64-linux-gnu-gcc" => "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
        "arm-linux-gnueabihf-gcc" => "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross",
        "riscv64-linux-gnu-gcc" => "gcc-riscv64-linux-gnu libc6-dev-riscv64-cross",
        "dbus-daemon" => "dbus-daemon",
        "systemd-binfmt" | "systemd-nspawn" => "systemd-container",
        t if t.starts_with("qemu-") => "qemu-user-static",
        t => t,
    }
}

/// Whether `name` is on `$PATH` (or is an existing path). Under CI a missing tool panics
/// with the package to install; otherwise this returns false and the caller prints a skip.
pub fn require_tool(name: &str) -> bool {
    let found = if name.contains('/') {
        Path::new(name).exists()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
            || ["/usr/sbin", "/sbin", "/usr/lib/systemd"]
                .iter()
                .any(|d| Path::new(d).join(name).is_file())
    };
    if !found {
        let hint = format!(
            "{name} is not installed; install it with `apt-get install -y --no-install-recommends {}`",
            package_for(name)
        );
        assert!(!in_ci(), "{hint} (CI is set, so this is a failure)");
        eprintln!("skipping: {hint}");
    }
    found
}

/// Debian tools unpacked (never installed) by `tests/fixtures/debian-tools.sh`: a directory
/// with `usr/sbin/update-binfmts` and `usr/bin/promtool`.
pub fn debian_tools() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        run_fixture_script("debian-tools.sh");
        fixtures_dir().join("debian-tools")
    })
}

/// Runs `sh -ec SCRIPT` in a new user + mount namespace (root mapped) with a fresh, private
/// binfmt_misc instance mounted at /proc/sys/fs/binfmt_misc; the host's is never touched.
pub fn private_instance_sh(script: &str, envs: &[(&str, &Path)]) -> std::process::Output {
    let full = format!(
        "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc\n\
         [ \"$(ls /proc/sys/fs/binfmt_misc | wc -l)\" = 2 ] || {{ echo 'instance not empty' >&2; exit 99; }}\n{script}"
    );
    let mut c = Command::new("unshare");
    c.args(["--user", "--map-root-user", "--mount", "sh", "-ec", &full])
        .env("BINFMTD_NO_DAEMON", "1")
        .env("BIN", binfmtd_bin());
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().expect("cannot run unshare (util-linux)");
    eprintln!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
