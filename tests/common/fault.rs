//! Fault-injection harness: a shell script in `binfmtd sandbox --empty` (a private, empty
//! binfmt_misc instance), drop-ins pointing handlers at copies of qemu-*-static, a shell
//! prelude (`snap TAG` records `status --json`, the instance's entries and the state file),
//! and the check that the recorded state and `status` agree with the kernel.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

/// Shell functions every script gets. `$B` is the instance, `$OTHER` another tool's line.
pub const PRELUDE: &str = r#"B=/proc/sys/fs/binfmt_misc
OTHER=':other-tool:M::\x7fXYZ::/bin/true:'
snap() {
    $BIN status --json > $T/$1.status.json || echo "status exit $?" > $T/$1.status.err
    ls $B > $T/$1.ls
    cp $T/state/state.json $T/$1.state.json 2>/dev/null || echo '{}' > $T/$1.state.json
}
"#;

/// Copies `/usr/bin/HANDLER-static` into `dir` and writes a drop-in pointing HANDLER at it.
pub fn dropin(dir: &Path, handler: &str) {
    let conf = dir.join("config/interpreters.d");
    std::fs::create_dir_all(&conf).unwrap();
    let copy = dir.join(handler);
    std::fs::copy(format!("/usr/bin/{handler}-static"), &copy).unwrap();
    let embedded =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("interpreters/{handler}.toml"));
    let text: Vec<String> = std::fs::read_to_string(embedded)
        .unwrap()
        .lines()
        .map(|l| match l.starts_with("interpreters") {
            true => format!("interpreters = [{copy:?}]"),
            false => l.to_string(),
        })
        .collect();
    std::fs::write(conf.join(format!("{handler}.toml")), text.join("\n")).unwrap();
}

/// Runs PRELUDE + `script` with `sh -ec` in a private instance, state/config/binfmt.d
/// under `dir`, changes made directly (no daemon).
pub fn sandbox(dir: &Path, handlers: &[&str], script: &str) -> Output {
    for h in handlers {
        dropin(dir, h);
    }
    let out = Command::new(super::binfmtd_bin())
        .args(["sandbox", "--empty", "--", "sh", "-ec"])
        .arg(format!("{PRELUDE}{script}"))
        .env("BINFMTD_STATE_DIR", dir.join("state"))
        .env("BINFMTD_CONFIG_DIR", dir.join("config"))
        .env("BINFMTD_BINFMT_D_DIR", dir.join("binfmt.d"))
        .env("BINFMTD_NO_DAEMON", "1")
        .env("BIN", super::binfmtd_bin())
        .env("T", dir)
        .output()
        .unwrap();
    // Long loops print a lot; the end says what went wrong.
    let text =
        |b: &[u8]| String::from_utf8_lossy(&b[b.len().saturating_sub(20_000)..]).into_owned();
    eprintln!(
        "--- stdout\n{}--- stderr\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// True when the tools these tests need are present (a skip outside CI says why).
pub fn prerequisites(extra: &[&str]) -> bool {
    ["qemu-aarch64-static"]
        .iter()
        .chain(extra)
        .all(|t| super::require_tool(t))
}

/// What `snap TAG` recorded, checked for agreement: `status --json` lists exactly the
/// entries the kernel holds, calls binfmtd's exactly those the state file records with
/// the same line, and lists as missing exactly the recorded ones the kernel lacks.
/// Returns (status, state).
pub fn consistent(dir: &Path, tag: &str) -> (Value, Value) {
    let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{tag}.{ext}")));
    assert!(read("status.err").is_err(), "{tag}: status failed");
    let status: Value = serde_json::from_str(&read("status.json").unwrap()).unwrap();
    let state: Value = serde_json::from_str(&read("state.json").unwrap()).unwrap();
    let listed: BTreeSet<String> = read("ls")
        .unwrap()
        .lines()
        .filter(|l| !matches!(*l, "register" | "status"))
        .map(String::from)
        .collect();
    let entries = status["entries"].as_array().cloned().unwrap_or_default();
    let reported: BTreeSet<String> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    if status["mounted"] == true {
        assert_eq!(reported, listed, "{tag}: status lists the kernel's entries");
    }
    let recorded = state["entries"].as_object().cloned().unwrap_or_default();
    for e in &entries {
        let name = e["name"].as_str().unwrap();
        assert!(
            e["owned"] != true || recorded.contains_key(name),
            "{tag}: status calls {name} binfmtd's, the state does not: {status} {state}"
        );
    }
    let missing: BTreeSet<String> = status["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = recorded
        .keys()
        .filter(|n| !reported.contains(*n))
        .filter(|n| {
            !state["pending"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == n.as_str()))
        })
        .cloned()
        .collect();
    assert_eq!(missing, expected, "{tag}: status names what is lost");
    let unfinished = status["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("did not finish"));
    assert_eq!(
        unfinished,
        pending(&state) > 0,
        "{tag}: status warns of an unfinished change exactly when one is journaled: {status}"
    );
    (status, state)
}

/// The names of the entries `snap TAG` saw in the kernel.
pub fn listed(dir: &Path, tag: &str) -> BTreeSet<String> {
    std::fs::read_to_string(dir.join(format!("{tag}.ls")))
        .unwrap()
        .lines()
        .filter(|l| !matches!(*l, "register" | "status"))
        .map(String::from)
        .collect()
}

/// The journal of unfinished changes in a state file snapshot.
pub fn pending(state: &Value) -> usize {
    state["pending"].as_array().map_or(0, Vec::len)
}

/// The checks after a kill at `tag`: when killed (`TAG.killed`), `status` agrees with the
/// kernel and the other tool's entry survived; after recovery (`TAG.after`), `status`
/// agrees, nothing is journaled and the kernel lists exactly `want`. Returns the recovered
/// (status, state).
pub fn recovered(dir: &Path, tag: &str, want: &BTreeSet<String>) -> (Value, Value) {
    consistent(dir, &format!("{tag}.killed"));
    assert!(
        listed(dir, &format!("{tag}.killed")).contains("other-tool"),
        "{tag}: the other tool's entry survives the kill"
    );
    let (status, state) = consistent(dir, &format!("{tag}.after"));
    assert_eq!(pending(&state), 0, "{tag}: recovered: {state}");
    assert_eq!(&listed(dir, &format!("{tag}.after")), want, "{tag}");
    (status, state)
}

/// The call a run under `strace -o TAG.strace ... inject=...:signal=SIGKILL` was killed in:
/// the last traced call that never returned.
/// When other threads' calls interleave, strace splits the killed call into
/// `PID call(args <unfinished ...>` and `PID <... call resumed>) = ?`: the two are joined.
pub fn kill_point(dir: &Path, tag: &str) -> String {
    let log = std::fs::read_to_string(dir.join(format!("{tag}.strace"))).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let Some(at) = lines.iter().rposition(|l| l.contains(" = ?")) else {
        return String::new();
    };
    let killed = lines[at];
    if !killed.contains(" resumed>") {
        return killed.to_string();
    }
    let pid = killed.split_whitespace().next().unwrap_or_default();
    lines[..at]
        .iter()
        .rfind(|l| l.split_whitespace().next() == Some(pid) && l.contains("<unfinished ...>"))
        .map_or(killed.to_string(), |start| format!("{start} {killed}"))
}

/// Asserts that some kill point contains `needle` (the step `what` was hit).
pub fn covers(points: &[String], what: &str, needle: &str) {
    assert!(
        points.iter().any(|p| p.contains(needle)),
        "no kill {what} ({needle}); kill points: {points:#?}"
    );
}
