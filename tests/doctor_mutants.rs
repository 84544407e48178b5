//! Doctor never says "it will run" about a program that does not run: a mutation harness.
//! Small static and dynamic x86-64 programs are built with gcc, then one thing the loader
//! relies on is damaged at a time (identity bytes, e_type, e_machine, the program-header
//! table, PT_INTERP, PT_LOAD, truncation). Ground truth is real execution as nobody in a
//! temporary directory; every mutant that fails must get doctor's exit 1 with a finding that
//! names the damage, every mutant that runs must get no error-level finding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Exit status and line of the test program, so "ran" means the program itself ran.
const EXIT: i32 = 42;
const MARK: &str = "mutant-ok";

fn rd16(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes([b[o], b[o + 1]]).into()
}
fn rd32(b: &[u8], o: usize) -> u64 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap()).into()
}
fn rd64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn wr16(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 2].copy_from_slice(&(v as u16).to_le_bytes());
}
fn wr64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// File offset of the first program header of type `t` (ELF64 little-endian).
fn phdr(b: &[u8], t: u32) -> Option<usize> {
    let (off, num) = (rd64(b, 32) as usize, rd16(b, 56) as usize);
    (0..num)
        .map(|i| off + i * 56)
        .find(|p| rd32(b, *p) == u64::from(t))
}

/// The PT_LOAD holding the entry point.
fn text_load(b: &[u8]) -> usize {
    let (off, num, entry) = (rd64(b, 32) as usize, rd16(b, 56) as usize, rd64(b, 24));
    (0..num)
        .map(|i| off + i * 56)
        .find(|p| {
            let (va, mem) = (rd64(b, p + 16), rd64(b, p + 40));
            rd32(b, *p) == 1 && entry >= va && entry < va + mem
        })
        .expect("a PT_LOAD holds the entry point")
}

type Mutate = fn(&mut Vec<u8>) -> bool;

/// (name, words of which one must appear in an error finding, mutation; false = not applicable)
const MUTATIONS: &[(&str, &[&str], Mutate)] = &[
    ("control", &[], |_| true),
    ("ident magic", &["magic", "not a known"], |b| {
        b[1] = b'X';
        true
    }),
    ("ident class 32", &["EI_CLASS"], |b| {
        b[4] = 1;
        true
    }),
    ("ident class 0", &["EI_CLASS"], |b| {
        b[4] = 0;
        true
    }),
    ("ident data big-endian", &["EI_DATA"], |b| {
        b[5] = 2;
        true
    }),
    ("ident version 0", &["EI_VERSION"], |b| {
        b[6] = 0;
        true
    }),
    ("ident osabi FreeBSD", &["OSABI"], |b| {
        b[7] = 9;
        true
    }),
    ("e_type REL", &["relocatable"], |b| {
        wr16(b, 16, 1);
        true
    }),
    ("e_type CORE", &["core"], |b| {
        wr16(b, 16, 4);
        true
    }),
    ("e_type 0x1234", &["type"], |b| {
        wr16(b, 16, 0x1234);
        true
    }),
    ("e_machine AArch64", &["AArch64"], |b| {
        wr16(b, 18, 183);
        true
    }),
    ("e_machine i386", &["e_phentsize", "program header"], |b| {
        wr16(b, 18, 3);
        true
    }),
    ("e_machine 0xbeef", &["machine"], |b| {
        wr16(b, 18, 0xbeef);
        true
    }),
    ("e_phoff 0", &["program header", "e_phoff"], |b| {
        wr64(b, 32, 0);
        true
    }),
    ("e_phoff past end", &["program header", "e_phoff"], |b| {
        let len = b.len() as u64;
        wr64(b, 32, len - 8);
        true
    }),
    ("e_phoff huge", &["program header", "e_phoff"], |b| {
        wr64(b, 32, u64::MAX - 7);
        true
    }),
    ("e_phnum 0", &["e_phnum", "program header"], |b| {
        wr16(b, 56, 0);
        true
    }),
    ("e_phnum 0xffff", &["e_phnum", "program header"], |b| {
        wr16(b, 56, 0xffff);
        true
    }),
    ("e_phnum 100", &["e_phnum", "program header"], |b| {
        wr16(b, 56, 100);
        true
    }),
    ("e_phentsize 0", &["e_phentsize"], |b| {
        wr16(b, 54, 0);
        true
    }),
    ("e_phentsize 64", &["e_phentsize"], |b| {
        wr16(b, 54, 64);
        true
    }),
    ("e_shoff garbage", &[], |b| {
        wr64(b, 40, u64::MAX - 100);
        wr16(b, 60, 0xffff);
        true
    }),
    ("PT_INTERP offset past end", &["PT_INTERP"], |b| {
        let Some(p) = phdr(b, 3) else { return false };
        let len = b.len() as u64;
        wr64(b, p + 8, len + 4096);
        true
    }),
    ("PT_INTERP size 1", &["PT_INTERP"], |b| {
        let Some(p) = phdr(b, 3) else { return false };
        wr64(b, p + 32, 1);
        true
    }),
    ("PT_INTERP size 5000", &["PT_INTERP"], |b| {
        let Some(p) = phdr(b, 3) else { return false };
        wr64(b, p + 32, 5000);
        true
    }),
    ("PT_INTERP unterminated", &["PT_INTERP"], |b| {
        let Some(p) = phdr(b, 3) else { return false };
        let (off, size) = (rd64(b, p + 8) as usize, rd64(b, p + 32) as usize);
        b[off + size - 1] = b'x';
        true
    }),
    ("PT_INTERP path cut short", &["PT_INTERP"], |b| {
        let Some(p) = phdr(b, 3) else { return false };
        let size = rd64(b, p + 32);
        wr64(b, p + 32, size - 4);
        true
    }),
    (
        "PT_INTERP names a missing loader",
        &["loader", "ld-linux"],
        |b| {
            let Some(p) = phdr(b, 3) else { return false };
            let off = rd64(b, p + 8) as usize;
            b[off + 1] = b'X';
            true
        },
    ),
    ("PT_LOAD text offset misaligned", &["PT_LOAD"], |b| {
        let p = text_load(b);
        let off = rd64(b, p + 8);
        wr64(b, p + 8, off + 1);
        true
    }),
    ("PT_LOAD text offset past end", &["PT_LOAD"], |b| {
        let p = text_load(b);
        let len = b.len() as u64;
        let off = rd64(b, p + 8);
        wr64(b, p + 8, (len + 0x10_0000) & !0xfff | (off & 0xfff));
        true
    }),
    ("PT_LOAD text filesz 0", &["PT_LOAD", "entry"], |b| {
        let p = text_load(b);
        wr64(b, p + 32, 0);
        true
    }),
    ("PT_LOAD text filesz past end", &["PT_LOAD"], |b| {
        let p = text_load(b);
        let len = b.len() as u64;
        wr64(b, p + 32, len + 0x10_0000);
        wr64(b, p + 40, len + 0x10_0000);
        true
    }),
    ("PT_LOAD filesz > memsz", &["PT_LOAD"], |b| {
        let p = text_load(b);
        let mem = rd64(b, p + 40);
        wr64(b, p + 32, mem + 1);
        true
    }),
    ("PT_LOAD memsz huge", &["PT_LOAD"], |b| {
        let p = text_load(b);
        wr64(b, p + 40, 1 << 62);
        true
    }),
    ("truncated to 16 bytes", &["truncated", "corrupt"], |b| {
        b.truncate(16);
        true
    }),
    ("truncated to 63 bytes", &["truncated", "corrupt"], |b| {
        b.truncate(63);
        true
    }),
    (
        "truncated after headers",
        &["truncated", "PT_LOAD", "PT_INTERP"],
        |b| {
            let end = rd64(b, 32) + rd16(b, 54) * rd16(b, 56);
            b.truncate(end as usize);
            true
        },
    ),
    ("truncated to half", &["truncated", "PT_LOAD"], |b| {
        b.truncate(b.len() / 2);
        true
    }),
    ("truncated by 1 byte", &[], |b| {
        b.pop();
        true
    }),
];

/// What running the mutant as nobody did.
struct Ran {
    ok: bool,
    how: String,
}

/// Judges a run from its exit code (None: killed), stdout and stderr.
fn ran(code: Option<i32>, stdout: &str, stderr: &str) -> Ran {
    let ok = code == Some(EXIT) && stdout.contains(MARK);
    let how = match code {
        Some(EXIT) if ok => "ran".to_string(),
        Some(137) => "killed (SIGKILL or timeout)".to_string(),
        // 255: qemu's own "Error while loading" exit, not a signal.
        Some(c) if c > 128 && c < 255 => format!("signal {}", c - 128),
        Some(c) => {
            let why = stderr.trim().rsplit(": ").next().unwrap_or("");
            format!("exit {c} ({why})")
        }
        None => "killed".to_string(),
    };
    Ran { ok, how }
}

fn run_as_nobody(dir: &Path, file: &Path) -> Ran {
    let out = Command::new("timeout")
        .args(["-s", "KILL", "10", "setpriv"])
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(file)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("cannot run timeout/setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ran(out.status.code(), &stdout, &stderr)
}

/// Doctor's exit code, and its error findings as "id: message evidence" lines.
fn doctor(file: &Path) -> (i32, Vec<String>) {
    let out = Command::new(common::binfmtd_bin())
        .args(["doctor", "--json"])
        .arg(file)
        .env("BINFMTD_BINFMT_MISC", "/nonexistent-binfmt-misc")
        .output()
        .expect("cannot run binfmtd doctor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        out.status.code().unwrap_or(-1),
        errors_of(&out.stdout, &stderr),
    )
}

/// The error findings of a `doctor --json` report.
fn errors_of(stdout: &[u8], stderr: &str) -> Vec<String> {
    assert!(!stderr.contains("panicked"), "doctor panicked: {stderr}");
    let json: serde_json::Value = serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}): {stderr}"));
    let mut errors = Vec::new();
    for s in json["subjects"].as_array().into_iter().flatten() {
        for f in s["findings"].as_array().into_iter().flatten() {
            if f["severity"] == "error" {
                errors.push(format!("{}: {} {}", f["id"], f["message"], f["evidence"]));
            }
        }
    }
    errors
}

fn build(dir: &Path, gcc: &str, name: &str, flags: &[&str]) -> Vec<u8> {
    let src = dir.join("m.c");
    std::fs::write(
        &src,
        format!("#include <stdio.h>\nint main(void){{puts(\"{MARK}\");return {EXIT};}}\n"),
    )
    .unwrap();
    let out = dir.join(name);
    let o = Command::new(gcc)
        .args(["-O1", "-o"])
        .arg(&out)
        .args(flags)
        .arg(&src)
        .output()
        .expect("cannot run gcc");
    assert!(
        o.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(&out).unwrap()
}

/// Every applicable mutant of each base: (file name, base kind, mutation index, bytes).
fn mutants(bases: &[(&'static str, Vec<u8>)]) -> Vec<(String, &'static str, usize, Vec<u8>)> {
    let mut out = Vec::new();
    for (kind, base) in bases {
        for (i, (_, _, mutate)) in MUTATIONS.iter().enumerate() {
            let mut bytes = base.clone();
            if mutate(&mut bytes) {
                out.push((format!("{kind}-{i}"), *kind, i, bytes));
            }
        }
    }
    out
}

/// One mutant's outcome: base kind, mutation index, execution, doctor's exit and errors.
type Row = (&'static str, usize, Ran, i32, Vec<String>);

/// Prints the table and fails on every mutant doctor is wrong about.
fn judge(rows: &[Row]) {
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for (kind, i, ran, code, errors) in rows {
        let (name, words, _) = MUTATIONS[*i];
        let said = errors
            .first()
            .map(|e| e.chars().take(110).collect::<String>());
        let said = said.unwrap_or_else(|| "no error".into());
        table.push(format!(
            "| {kind} | {name} | {} | {code} | {said} |",
            ran.how
        ));
        let all = errors.join("\n").to_lowercase();
        let named = words.iter().any(|w| all.contains(&w.to_lowercase()));
        if !ran.ok && (*code != 1 || !named) {
            wrong.push(format!(
                "{kind} {name}: {} but doctor exit {code}, wanted one of {words:?} in {errors:?}",
                ran.how
            ));
        }
        if ran.ok && (*code != 0 || !errors.is_empty()) {
            wrong.push(format!("{kind} {name}: ran but doctor said {errors:?}"));
        }
        if name == "control" {
            assert!(
                ran.ok && *code == 0,
                "control {kind}: {} / {errors:?}",
                ran.how
            );
        }
    }
    eprintln!("| base | damage | execution | doctor exit | first error |");
    eprintln!("|---|---|---|---|---|\n{}", table.join("\n"));
    assert!(
        wrong.is_empty(),
        "doctor is wrong about:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_mutant_that_fails_to_run_gets_an_error_naming_the_damage() {
    if !common::require_tool("gcc") || !common::require_tool("setpriv") {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        assert!(
            !common::in_ci(),
            "the mutation harness needs root (setpriv)"
        );
        eprintln!("skipping: needs root to run mutants as nobody");
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("mutants")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bases = [
        ("static", build(dir, "gcc", "base-static", &["-static"])),
        ("dynamic", build(dir, "gcc", "base-dynamic", &[])),
    ];
    let mut rows = Vec::new();
    for (file_name, kind, i, bytes) in mutants(&bases) {
        let file = dir.join(file_name);
        std::fs::write(&file, &bytes).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ran = run_as_nobody(dir, &file);
        let (code, errors) = doctor(&file);
        rows.push((kind, i, ran, code, errors));
    }
    judge(&rows);
}

/// A directory inside the cached arm64 root, removed again however the test ends.
struct InRoot(std::path::PathBuf);

impl Drop for InRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn foreign_mutants_through_a_registered_handler_in_an_arm64_root() {
    for tool in [
        "aarch64-linux-gnu-gcc",
        "qemu-aarch64-static",
        "debootstrap",
        "setpriv",
    ] {
        if !common::require_tool(tool) {
            return;
        }
    }
    if !nix::unistd::geteuid().is_root() {
        assert!(
            !common::in_ci(),
            "the mutation harness needs root (setpriv)"
        );
        return;
    }
    let root = common::arm64_root();
    let sub = format!("mutants-{}", std::process::id());
    let dir = InRoot(root.join(&sub));
    std::fs::create_dir_all(&dir.0).unwrap();
    // Written by the sandbox's user (nobody outside the namespace).
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let gcc = "aarch64-linux-gnu-gcc";
    let bases = [
        (
            "static",
            build(tmp.path(), gcc, "base-static", &["-static"]),
        ),
        ("dynamic", build(tmp.path(), gcc, "base-dynamic", &[])),
    ];
    let all = mutants(&bases);
    for (file_name, _, _, bytes) in &all {
        let file = dir.0.join(file_name);
        std::fs::write(&file, bytes).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let bin = common::binfmtd_bin();
    // Ground truth: each mutant run through the private handler, chrooted, as nobody.
    let run = format!("cd /{sub}; for f in static-* dynamic-*; do case $f in *.*) continue;; esac; timeout -s KILL 10 ./$f > $f.out 2> $f.err; echo $? > $f.rc; done");
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["sandbox", "--platform", "linux/arm64", "--root"])
        .arg(root)
        .args(["--", "/bin/sh", "-c", &run])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Doctor, in a private instance with the same handler, looking into the same root.
    let diag = format!("for f in {}; do \"$BIN\" doctor --json --root \"$ROOT\" /{sub}/$f > \"$D/$f.json\" 2> \"$D/$f.derr\"; echo $? > \"$D/$f.code\"; done", all.iter().map(|m| m.0.as_str()).collect::<Vec<_>>().join(" "));
    let o = Command::new(&bin)
        .args([
            "sandbox",
            "--platform",
            "linux/arm64",
            "--",
            "sh",
            "-c",
            &diag,
        ])
        .env("BIN", &bin)
        .env("ROOT", root)
        .env("D", tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    let mut rows = Vec::new();
    for (file_name, kind, i, _) in &all {
        let rc: Option<i32> = read(dir.0.join(format!("{file_name}.rc")))
            .trim()
            .parse()
            .ok();
        let out = read(dir.0.join(format!("{file_name}.out")));
        let err = read(dir.0.join(format!("{file_name}.err")));
        let code: i32 = read(tmp.path().join(format!("{file_name}.code")))
            .trim()
            .parse()
            .unwrap_or(-1);
        let json = std::fs::read(tmp.path().join(format!("{file_name}.json"))).unwrap_or_default();
        let errors = errors_of(&json, &read(tmp.path().join(format!("{file_name}.derr"))));
        rows.push((*kind, *i, ran(rc, &out, &err), code, errors));
    }
    judge(&rows);
}
