//! `binfmtd ps` and `doctor --pid` against real emulated processes, each started inside a
//! private binfmt_misc instance (`binfmtd sandbox`), never the host's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sandbox and everything in it, killed (as a process group) when dropped; `bin` is
/// this sandbox's own copy of the program, so that its processes are told from others'.
struct Sandbox {
    child: Child,
    bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let pg = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pg, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A docker-style cgroup on the cgroup2 mount, removed when dropped.
struct Cgroup {
    dir: PathBuf,
    root: PathBuf,
}

impl Cgroup {
    fn create(id: &str) -> Option<Cgroup> {
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.controllers").exists())?;
        let dir = root.join(format!("system.slice/docker-{id}.scope"));
        std::fs::create_dir_all(&dir).ok()?;
        Some(Cgroup { dir, root })
    }
    fn enter(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in text.lines() {
                let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts `binfmtd sandbox --platform linux/arm64 -- sh -c SCRIPT` in its own process group.
fn sandbox(script: &str) -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("hang-aarch64");
    std::fs::copy(common::cross_bins().join("hang-aarch64"), &bin).unwrap();
    let child = Command::new(common::binfmtd_bin())
        .env("BINFMTD_STATE_DIR", dir.path().join("state"))
        .env("BINFMTD_CONFIG_DIR", dir.path().join("config"))
        .env("BINFMTD_BINFMT_D_DIR", dir.path().join("binfmt.d"))
        .env("H", &bin)
        .args([
            "sandbox",
            "--platform",
            "linux/arm64",
            "--",
            "sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    Sandbox {
        child,
        bin,
        _dir: dir,
    }
}

fn ps_json(args: &[&str]) -> Value {
    let out = Command::new(common::binfmtd_bin())
        .args(["ps", "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn processes(r: &Value) -> Vec<(Value, Value)> {
    let mut v = vec![];
    for g in r["groups"].as_array().unwrap() {
        for p in g["processes"].as_array().unwrap() {
            v.push((g["container"].clone(), p.clone()));
        }
    }
    v
}

fn mode_of(p: &Value) -> String {
    p["guest"]["argv"][1].as_str().unwrap_or("").to_string()
}

/// Waits until ps shows the three hanging programs of this sandbox's binary.
fn wait_for(bin: &Path, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = ps_json(&["--sample", "1"]);
        let ours = processes(&r)
            .iter()
            .filter(|(_, p)| p["guest"]["path"] == bin.display().to_string())
            .filter(|(_, p)| ["pipe", "spin", "futex"].contains(&mode_of(p).as_str()))
            .count();
        if ours >= n {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "ps never showed {n} programs: {r}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn ready() -> bool {
    common::require_tool("aarch64-linux-gnu-gcc")
        && common::require_tool("qemu-aarch64-static")
        && nix::unistd::geteuid().is_root()
}

#[test]
fn ps_and_doctor_pid_on_emulated_processes() {
    if !ready() {
        eprintln!("SKIPPED: needs root, aarch64-linux-gnu-gcc and qemu-user-static");
        return;
    }
    // The exit-at-once program runs in a loop: PIDs that vanish mid-scan.
    let sb = sandbox("$H pipe & $H spin & $H futex & while :; do $H exit; done");
    let bin = sb.bin.clone();
    let r = wait_for(&bin, 3);
    assert_eq!(r["schema"], "binfmtd.ps/v1");
    let all = processes(&r);
    let find = |mode: &str| {
        all.iter()
            .find(|(_, p)| p["guest"]["path"] == bin.display().to_string() && mode_of(p) == mode)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no {mode} in {r}"))
    };
    let pipe = find("pipe");
    assert_eq!(pipe["emulator"]["handler"], "qemu-aarch64");
    assert_eq!(pipe["emulator"]["translator"], "qemu");
    assert_eq!(pipe["guest"]["platform"], "linux/arm64");
    let main = pipe["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tid"] == pipe["pid"])
        .unwrap();
    assert_eq!(main["class"], "blocked", "{pipe}");
    assert_eq!(main["syscall"], "read", "{pipe}");
    assert_eq!(main["waits_on"], "pipe", "{pipe}");
    let spin = find("spin");
    assert_eq!(spin["class"], "spinning", "{spin}");
    let futex = find("futex");
    assert_eq!(futex["class"], "blocked", "{futex}");
    assert!(futex["threads"].as_array().unwrap().len() >= 4, "{futex}");
    assert!(
        futex["threads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["syscall"] == "futex"),
        "{futex}"
    );
    assert!(
        futex["summary"]
            .as_str()
            .unwrap()
            .starts_with("blocked in futex for"),
        "{futex}"
    );
    // Natives are not listed: not the sandbox's shell, not this test.
    let me = std::process::id() as i64;
    assert!(all
        .iter()
        .all(|(_, p)| p["pid"] != me && p["emulator"]["translator"].is_string()));
    assert!(all.iter().all(|(_, p)| p["comm"] != "sh"));

    // doctor --pid: verdicts with evidence, exit 1.
    for (p, want) in [(&pipe, "blocked in read (pipe)"), (&spin, "spinning")] {
        let pid = p["pid"].to_string();
        let out = Command::new(common::binfmtd_bin())
            .args(["doctor", "--pid", &pid, "--sample", "1", "--json"])
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(1), "{doc}");
        assert_eq!(doc["mode"], "pid");
        let verdict = doc["process"]["verdict"].as_str().unwrap();
        assert!(verdict.contains(want), "{verdict}");
        let steps = doc["process"]["next_steps"].to_string();
        assert!(
            steps.contains("QEMU_STRACE=1") && steps.contains("QEMU_GDB"),
            "{steps}"
        );
    }
}

#[test]
fn doctor_pid_errors() {
    let run = |args: &[&str]| {
        Command::new(common::binfmtd_bin())
            .args(args)
            .output()
            .unwrap()
    };
    // A PID that does not exist: exit 2 and a message that says so.
    let out = run(&["doctor", "--pid", "2147483646"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process 2147483646"));
    // A native process: exit 2, pointing at ps.
    let me = std::process::id().to_string();
    let out = run(&["doctor", "--pid", &me]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not run under a known emulator"));
    // Another user's process read by nobody: exit 4 with the advice.
    if nix::unistd::geteuid().is_root() && common::require_tool("setpriv") {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(common::binfmtd_bin())
            .args(["doctor", "--pid", "1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{err}");
        assert!(err.contains("run as root or as the owner"), "{err}");
    }
}

#[test]
fn ps_attributes_a_docker_cgroup() {
    if !ready() {
        eprintln!("SKIPPED: needs root, aarch64-linux-gnu-gcc and qemu-user-static");
        return;
    }
    let id: String = (0..64)
        .map(|i| b"0123456789abcdef"[(i * 7 + 3) % 16] as char)
        .collect();
    let Some(cg) = Cgroup::create(&id) else {
        assert!(
            !common::in_ci(),
            "no cgroup2 mount to create a docker-style cgroup in"
        );
        eprintln!("SKIPPED: no writable cgroup2 mount");
        return;
    };
    let sb = sandbox("exec $H pipe");
    let bin = sb.bin.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        let r = ps_json(&["--sample", "0"]);
        if let Some((_, p)) = processes(&r)
            .into_iter()
            .find(|(_, p)| p["guest"]["path"] == bin.display().to_string())
        {
            break p["pid"].as_u64().unwrap() as u32;
        }
        assert!(Instant::now() < deadline, "the pipe reader never showed up");
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = sb.child.id();
    cg.enter(pid);
    let r = ps_json(&["--sample", "0", "--container", &id[..12]]);
    let listed = processes(&r);
    assert_eq!(listed.len(), 1, "{r}");
    let (container, p) = &listed[0];
    assert_eq!(p["pid"], pid);
    assert_eq!(container["runtime"], "docker");
    assert_eq!(container["id"], id.as_str());
    assert_eq!(container["short_id"], &id[..12]);
    let text = Command::new(common::binfmtd_bin())
        .args(["ps", "--sample", "0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("Container docker {}", &id[..12])),
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    drop(sb);
    drop(cg);
}
