//! Every `binfmtd` command in README.md and docs/guide.md (lines of ```sh blocks that start
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! with `binfmtd` or `sudo binfmtd`) runs, in order, inside one `binfmtd sandbox --empty` (a
//! private binfmt_misc instance) started as uid 65534, so that no command can write a file of
//! the host; a `binfmtd daemon --no-bus` runs beside them for the readiness checks. Each must
//! exit with the code the docs promise (0 unless listed below).

mod common;

use std::path::Path;
use std::process::Command;

/// Commands whose documented exit code is not 0.
const EXPECTED: &[(&str, i32)] = &[
    // A dynamically linked arm64 program without its loader on this host: problems found.
    ("binfmtd doctor ./app", 1),
    ("binfmtd doctor ./app --run --timeout 10", 1),
    // The test root is a debootstrap first stage: unconfigured, with findings.
    ("binfmtd doctor --root ./rootfs --all", 1),
];

/// `binfmtd` command lines of the ```sh blocks of a Markdown file, comments and `sudo` removed.
fn commands(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in doc.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = !in_sh && t == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let cmd = t.split("  #").next().unwrap().trim();
        let cmd = cmd.strip_prefix("sudo ").unwrap_or(cmd);
        if cmd.starts_with("binfmtd ") {
            out.push(cmd.to_string());
        }
    }
    out
}

#[test]
fn every_documented_command_runs() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            !common::in_ci(),
            "needs root (to start the sandbox as uid 65534)"
        );
        return;
    }
    if !common::require_tool("qemu-aarch64-static") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmds = commands(&std::fs::read_to_string(root.join("README.md")).unwrap());
    let guide = commands(&std::fs::read_to_string(root.join("docs/guide.md")).unwrap());
    assert!(
        guide.len() >= 20,
        "the guide's commands were not found: {guide:?}"
    );
    cmds.extend(guide);
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    std::fs::create_dir(w.join("bin")).unwrap();
    std::fs::copy(common::binfmtd_bin(), w.join("bin/binfmtd")).unwrap();
    let bins = common::cross_bins();
    std::os::unix::fs::symlink(bins.join("hello-aarch64-dynamic"), w.join("app")).unwrap();
    std::os::unix::fs::symlink(bins.join("hello-aarch64-static"), w.join("hello-aarch64")).unwrap();
    for r in ["rootfs", "arm64-rootfs"] {
        std::os::unix::fs::symlink(common::arm64_root(), w.join(r)).unwrap();
    }
    std::fs::create_dir(w.join("etc")).unwrap();
    std::fs::write(
        w.join("etc/binfmtd.toml"),
        "platforms = [\"linux/arm64\", \"linux/riscv64\"]\n",
    )
    .unwrap();
    let mut script = String::from(
        "binfmtd daemon --no-bus --check-interval 5 >/dev/null 2>daemon.log &\n\
         trap 'kill $! 2>/dev/null' EXIT\n\
         i=0; until [ -e \"$BINFMTD_STATE_DIR/daemon-status.json\" ] || [ $i -gt 100 ]; do sleep 0.1; i=$((i+1)); done\n",
    );
    for c in &cmds {
        script.push_str(&format!(
            "rc=0; {c} >/dev/null 2>&1 </dev/null || rc=$?; echo \"@@$rc@@{}\"\n",
            c.replace(['"', '$', '`', '\\'], "_")
        ));
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg("chown -R 65534:65534 \"$W\" && chmod 755 \"$W\" && cd \"$W\" && exec setpriv --reuid 65534 --regid 65534 --clear-groups env PATH=\"$W/bin:$PATH\" TMPDIR=\"$W\" HOME=\"$W\" binfmtd sandbox --empty -- sh -c \"$SCRIPT\"")
        .env("W", w)
        .env("SCRIPT", &script)
        .env("BINFMTD_CONFIG_DIR", w.join("etc"))
        .env("BINFMTD_STATE_DIR", w.join("state"))
        .env("BINFMTD_BINFMT_D_DIR", w.join("binfmt.d"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let ran: Vec<(i32, &str)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("@@"))
        .filter_map(|l| l.split_once("@@"))
        .map(|(rc, c)| (rc.parse().unwrap(), c))
        .collect();
    assert_eq!(ran.len(), cmds.len(), "not every command ran:\n{text}");
    let mut wrong = Vec::new();
    for ((rc, shown), cmd) in ran.iter().zip(&cmds) {
        let want = EXPECTED
            .iter()
            .find(|(c, _)| c == cmd)
            .map_or(0, |(_, e)| *e);
        if *rc != want {
            wrong.push(format!("{shown}: exit {rc}, documented {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
