//! An isolated environment for end-to-end tests of the CLI: state, config and binfmt.d
//! directories in a temp dir, and `binfmtd sandbox --empty` for a private instance.
#![allow(dead_code)] // each test crate uses only some of these helpers

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An isolated environment: state, config and binfmt.d directories in a temp dir.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(super::binfmtd_bin());
        c.env("BINFMTD_STATE_DIR", self.path("state"))
            .env("BINFMTD_CONFIG_DIR", self.path("config"))
            .env("BINFMTD_BINFMT_D_DIR", self.path("binfmt.d"))
            .env("BIN", super::binfmtd_bin())
            .env("T", self.dir.path());
        c
    }
    /// Writes a drop-in in this environment's config dir: the embedded handler `name` with
    /// its interpreter candidates replaced by `interpreter`.
    pub fn dropin_interpreter(&self, name: &str, interpreter: &str) {
        let embedded =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("interpreters/{name}.toml"));
        let text: Vec<String> = std::fs::read_to_string(embedded)
            .unwrap()
            .lines()
            .map(|l| match l.starts_with("interpreters") {
                true => format!("interpreters = [{interpreter:?}]"),
                false => l.to_string(),
            })
            .collect();
        let dir = self.path("config/interpreters.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.toml")), text.join("\n")).unwrap();
    }

    /// Runs a shell script inside `binfmtd sandbox --empty`: a fresh, private, empty instance.
    pub fn sandbox_sh(&self, script: &str) -> Output {
        let out = self
            .cmd()
            .args(["sandbox", "--empty", "--", "sh", "-ec", script])
            .output()
            .unwrap();
        eprintln!(
            "--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Splits the output of a script that prints JSON documents separated by a line `===`.
pub fn docs(o: &Output) -> Vec<Value> {
    stdout(o)
        .split("\n===\n")
        .filter_map(|s| Some(&s[s.find('{')?..=s.rfind('}')?]))
        .map(|s| serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}")))
        .collect()
}

pub fn handler<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["handler"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}
