//! Hostile input, table-driven: the CLI, the D-Bus methods, config files, handler drop-ins and
//! state files get delimiter/newline/NUL injection, oversize magic, mismatched masks, relative
//! and non-UTF-8 paths, unknown platforms and keys, absurd values and a closed stdout. Every
//! case must end with its documented exit code (docs/cli.md) or D-Bus error name, a message
//! naming the problem, no panic, and no change to the private binfmt_misc instance, the state
//! directory or the binfmt.d directory. Runs as root, inside a private instance (support::Daemon).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::*;

/// How a case reaches binfmtd.
enum Via {
    /// `binfmtd ARGS` (direct, in the private instance); stdout closed when `closed`.
    Cli { args: Vec<OsString>, closed: bool },
    /// `binfmtd ARGS` with a config dir holding `interpreters.d/hostile.toml` = body.
    DropIn {
        body: Vec<u8>,
        args: Vec<&'static str>,
    },
    /// `binfmtd daemon` with a config dir holding `binfmtd.toml` = body.
    Config { body: Vec<u8> },
    /// `binfmtd status` with a copy of the state dir whose `file` holds body.
    State { file: &'static str, body: Vec<u8> },
    /// `busctl call` as root: method, signature, arguments.
    Bus { args: Vec<String> },
}

struct Case {
    label: &'static str,
    via: Via,
    /// Exit code (CLI) or D-Bus error name.
    want: Want,
    /// One of these must appear in the output (case-insensitive).
    words: &'static [&'static str],
}

enum Want {
    Code(i32),
    Error(&'static str),
}

fn os(words: &[&str]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

fn cli(label: &'static str, args: &[&str], code: i32, words: &'static [&'static str]) -> Case {
    Case {
        label,
        via: Via::Cli {
            args: os(args),
            closed: false,
        },
        want: Want::Code(code),
        words,
    }
}

fn raw_cli(
    label: &'static str,
    args: Vec<OsString>,
    code: i32,
    words: &'static [&'static str],
) -> Case {
    Case {
        label,
        via: Via::Cli {
            args,
            closed: false,
        },
        want: Want::Code(code),
        words,
    }
}

fn closed(label: &'static str, args: &[&str]) -> Case {
    Case {
        label,
        via: Via::Cli {
            args: os(args),
            closed: true,
        },
        want: Want::Code(0),
        words: &[],
    }
}

fn dropin(label: &'static str, body: &str, words: &'static [&'static str]) -> Case {
    Case {
        label,
        via: Via::DropIn {
            body: body.as_bytes().to_vec(),
            args: vec!["install", "hostile", "--dry-run"],
        },
        want: Want::Code(2),
        words,
    }
}

fn config(label: &'static str, body: &[u8], words: &'static [&'static str]) -> Case {
    Case {
        label,
        via: Via::Config {
            body: body.to_vec(),
        },
        want: Want::Code(2),
        words,
    }
}

fn state(
    label: &'static str,
    file: &'static str,
    body: &[u8],
    code: i32,
    words: &'static [&'static str],
) -> Case {
    Case {
        label,
        via: Via::State {
            file,
            body: body.to_vec(),
        },
        want: Want::Code(code),
        words,
    }
}

fn bus(
    label: &'static str,
    args: &[&str],
    error: &'static str,
    words: &'static [&'static str],
) -> Case {
    Case {
        label,
        via: Via::Bus {
            args: args.iter().map(|s| s.to_string()).collect(),
        },
        want: Want::Error(error),
        words,
    }
}

/// A handler drop-in: `name`, magic and mask (escaped) and the rest as given.
fn handler(name: &str, magic: &str, mask: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\ntranslator = \"qemu\"\nplatforms = [\"linux/hostile\"]\narch = \"hostile\"\nmagic = '{magic}'\nmask = '{mask}'\ninterpreters = [\"/usr/bin/qemu-aarch64-static\"]\n{extra}"
    )
}

const MAGIC: &str = r"\x7fELF\x02\x01\x01";
const MASK: &str = r"\xff\xff\xff\xff\xff\xff\xff";

fn cli_cases() -> Vec<Case> {
    vec![
        cli(
            "platform with ':'",
            &["install", "linux/arm64:evil"],
            2,
            &["linux/arm64:evil"],
        ),
        cli(
            "platform with newline",
            &["install", "linux/arm64\n:x:E::x::/bin/sh:"],
            2,
            &["unknown", "linux/arm64"],
        ),
        cli(
            "unknown platform",
            &["install", "linux/riscv128"],
            2,
            &["linux/riscv128"],
        ),
        cli(
            "empty platform list",
            &["install", ""],
            2,
            &["empty", "platform"],
        ),
        cli(
            "list of commas",
            &["install", ",,,"],
            2,
            &["platform", "empty"],
        ),
        cli(
            "flags with ':'",
            &["install", "linux/arm64", "--flags", "F:"],
            2,
            &["flag"],
        ),
        cli(
            "unknown flag letter",
            &["install", "linux/arm64", "--flags", "Z"],
            2,
            &["flag", "Z"],
        ),
        // A trailing newline alone is trimmed (flags "F"); what follows one is refused.
        cli(
            "flags with newline injection",
            &["install", "linux/arm64", "--flags", "F\n:x:E::x::/bin/sh:"],
            2,
            &["flag"],
        ),
        raw_cli(
            "non-UTF-8 platform",
            vec![
                OsString::from("install"),
                OsString::from_vec(b"linux/\xffarm".to_vec()),
            ],
            2,
            &["UTF-8", "invalid"],
        ),
        cli(
            "uninstall path-like name",
            &["uninstall", "../../etc/passwd"],
            2,
            &["../../etc/passwd"],
        ),
        cli(
            "enable the control file 'status'",
            &["enable", "status"],
            2,
            &["status"],
        ),
        cli(
            "disable the control file 'register'",
            &["disable", "register"],
            2,
            &["register"],
        ),
        cli(
            "uninstall empty name",
            &["uninstall", ""],
            2,
            &["empty", "platform"],
        ),
        cli(
            "doctor relative missing path",
            &["doctor", "relative/none"],
            1,
            &["relative/none"],
        ),
        raw_cli(
            "doctor non-UTF-8 path",
            vec![
                OsString::from("doctor"),
                OsString::from_vec(b"/tmp/\xff\xfe".to_vec()),
            ],
            2,
            &["UTF-8"],
        ),
        raw_cli(
            "doctor non-UTF-8 root",
            vec![
                OsString::from("doctor"),
                OsString::from("--root"),
                OsString::from_vec(b"/\xff".to_vec()),
                OsString::from("/bin/sh"),
            ],
            2,
            &["UTF-8"],
        ),
        cli(
            "doctor missing root",
            &["doctor", "--root", "no/such/root", "/bin/sh"],
            2,
            &["no/such/root"],
        ),
        cli(
            "sandbox unknown platform",
            &["sandbox", "--platform", "linux/nonsense", "--", "true"],
            2,
            &["linux/nonsense"],
        ),
        cli(
            "export unknown format",
            &["export", "--format", "elf"],
            2,
            &["elf", "format"],
        ),
        cli(
            "export into a dir under a file",
            &[
                "export",
                "--format",
                "binfmt.d",
                "--dir",
                "/proc/version/dir",
            ],
            2,
            &["/proc/version/dir"],
        ),
        cli(
            "ps absurd sample",
            &["ps", "--sample", "1e300"],
            2,
            &["sample"],
        ),
        cli(
            "ps negative sample",
            &["ps", "--sample", "-5"],
            2,
            &["sample", "-5"],
        ),
        cli(
            "platforms absurd max-age",
            &["platforms", "--max-age", "99999999999999999999999"],
            2,
            &["max-age", "999"],
        ),
        cli(
            "unknown option",
            &["install", "linux/arm64", "--frobnicate"],
            2,
            &["frobnicate"],
        ),
        closed("status, stdout closed", &["status"]),
        closed("platforms --json, stdout closed", &["platforms", "--json"]),
        closed("host, stdout closed", &["host"]),
        closed(
            "install --dry-run, stdout closed",
            &["install", "linux/riscv64", "--dry-run"],
        ),
    ]
}

fn file_cases() -> Vec<Case> {
    vec![
        dropin(
            "drop-in name with ':'",
            &handler("host:ile", MAGIC, MASK, ""),
            &["hostile.toml"],
        ),
        dropin(
            "drop-in name with newline",
            &handler("host\\nile", MAGIC, MASK, ""),
            &["hostile.toml"],
        ),
        dropin(
            "drop-in name with NUL",
            &handler("host\\u0000ile", MAGIC, MASK, ""),
            &["hostile.toml"],
        ),
        dropin(
            "drop-in oversize magic",
            &handler("hostile", &r"\x41".repeat(200), &r"\xff".repeat(200), ""),
            &["hostile.toml"],
        ),
        dropin(
            "drop-in mask shorter than magic",
            &handler("hostile", MAGIC, r"\xff\xff", ""),
            &["hostile.toml"],
        ),
        dropin(
            "drop-in bad escape",
            &handler("hostile", r"\x7fELF\xZZ", MASK, ""),
            &["hostile.toml"],
        ),
        dropin(
            "drop-in unknown key",
            &handler("hostile", MAGIC, MASK, "frobnicate = 1\n"),
            &["hostile.toml"],
        ),
        dropin(
            "drop-in bad flags",
            &handler("hostile", MAGIC, MASK, "flags = \"F:X\"\n"),
            &["hostile.toml"],
        ),
        dropin(
            "drop-in absurd offset",
            &handler("hostile", MAGIC, MASK, "offset = 99999999999\n"),
            &["hostile.toml"],
        ),
        Case {
            label: "drop-in not UTF-8",
            via: Via::DropIn {
                body: b"name = \"\xff\xfe\"\n".to_vec(),
                args: vec!["install", "hostile", "--dry-run"],
            },
            want: Want::Code(2),
            words: &["hostile.toml"],
        },
        config(
            "config unknown key",
            b"platfroms = [\"linux/arm64\"]\n",
            &["binfmtd.toml"],
        ),
        config(
            "config wrong type",
            b"platforms = \"linux/arm64\"\n",
            &["binfmtd.toml"],
        ),
        config(
            "config not UTF-8",
            b"platforms = [\"\xff\"]\n",
            &["binfmtd.toml"],
        ),
        config("config NUL", b"flags = \"F\0\"\n", &["binfmtd.toml"]),
        state(
            "state.json garbage",
            "state.json",
            b"{\"entries\": [}\0\0",
            0,
            &["state.json"],
        ),
        state(
            "state.json wrong shape",
            "state.json",
            b"[1, 2, 3]",
            0,
            &["state.json"],
        ),
    ]
}

fn bus_cases() -> Vec<Case> {
    let ip = "org.binfmtd1.Error.InvalidArgument";
    let up = "org.binfmtd1.Error.UnknownPlatform";
    vec![
        bus(
            "Install platform with ':'",
            &["Install", "['linux/arm64:evil']", "{}", "false"],
            up,
            &["linux/arm64:evil"],
        ),
        bus(
            "Install platform with newline",
            &[
                "Install",
                "['linux/arm64\\n:x:E::x::/bin/sh:']",
                "{}",
                "false",
            ],
            up,
            &["linux/arm64"],
        ),
        bus(
            "Install no platforms",
            &["Install", "@as []", "{}", "false"],
            ip,
            &["platform"],
        ),
        bus(
            "Install flags with ':'",
            &["Install", "['linux/arm64']", "{'flags': <'F:'>}", "false"],
            ip,
            &["flag"],
        ),
        bus(
            "Install unknown flag",
            &["Install", "['linux/arm64']", "{'flags': <'Q'>}", "false"],
            ip,
            &["flag"],
        ),
        bus(
            "Install unknown option",
            &[
                "Install",
                "['linux/arm64']",
                "{'frobnicate': <true>}",
                "false",
            ],
            ip,
            &["frobnicate"],
        ),
        bus(
            "Install option of wrong type",
            &["Install", "['linux/arm64']", "{'force': <'yes'>}", "false"],
            ip,
            &["force"],
        ),
        bus(
            "Uninstall control file name",
            &["Uninstall", "['register']", "{}", "false"],
            up,
            &["register"],
        ),
        bus(
            "Uninstall unknown option",
            &[
                "Uninstall",
                "['linux/arm64']",
                "{'everything': <true>}",
                "false",
            ],
            ip,
            &["everything"],
        ),
        bus(
            "Enable path-like name",
            &["Enable", "['../../x']", "false"],
            up,
            &["../../x"],
        ),
        bus(
            "Disable 'status'",
            &["Disable", "['status']", "false"],
            up,
            &["status"],
        ),
        bus(
            "ListEmulated absurd sample",
            &["ListEmulated", "{'sample': <1e300>}"],
            ip,
            &["sample"],
        ),
        bus(
            "ListEmulated negative sample",
            &["ListEmulated", "{'sample': <-1.0>}"],
            ip,
            &["sample"],
        ),
        bus(
            "ListEmulated sample of wrong type",
            &["ListEmulated", "{'sample': <'soon'>}"],
            ip,
            &["sample"],
        ),
    ]
}

/// The instance's entries, and every file of the state and binfmt.d directories except the
/// daemon's own record (`daemon-status.json`, rewritten after every check by design, also
/// while its temporary file exists).
fn snapshot(d: &Daemon) -> String {
    let mut s = d.kernel_state();
    for dir in ["state", "binfmt.d"] {
        let mut files: Vec<_> = walk(&d.root.join(dir));
        files.sort();
        for f in files {
            if f.ends_with("daemon-status.json") {
                continue;
            }
            let body = std::fs::read(&f).unwrap_or_default();
            // The same record caught mid-write (its atomic writer's temporary file).
            if String::from_utf8_lossy(&body).contains("binfmtd.daemon-status/v1") {
                continue;
            }
            s.push_str(&format!(
                "== {}\n{}\n",
                f.display(),
                String::from_utf8_lossy(&body)
            ));
        }
    }
    s
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `binfmtd ARGS` as root inside the daemon's namespaces, acting directly.
fn binfmtd_in(d: &Daemon, args: &[OsString], env: &[(&str, &Path)], closed: bool) -> Output {
    let mut c = Command::new("nsenter");
    c.args([
        "-t",
        &d.holder.to_string(),
        "-U",
        "-m",
        "--preserve-credentials",
    ])
    .arg(daemon_exe())
    .args(args)
    .env("BINFMTD_NO_DAEMON", "1")
    .env("BINFMTD_STATE_DIR", d.root.join("state"))
    .env("BINFMTD_CONFIG_DIR", d.root.join("etc"))
    .env("BINFMTD_BINFMT_D_DIR", d.root.join("binfmt.d"))
    .current_dir(&d.root)
    .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    if closed {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        c.stdout(Stdio::from(write)).stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        return child.wait_with_output().unwrap();
    }
    c.output().unwrap()
}

/// Runs one case; returns what it printed and its exit code or D-Bus error name.
fn run(d: &Daemon, b: &Bus, case: &Case, scratch: &Path) -> (String, String) {
    let out = match &case.via {
        Via::Cli { args, closed } => binfmtd_in(d, args, &[], *closed),
        Via::DropIn { body, args } => {
            let etc = scratch.join("etc");
            std::fs::create_dir_all(etc.join("interpreters.d")).unwrap();
            std::fs::write(etc.join("interpreters.d/hostile.toml"), body).unwrap();
            binfmtd_in(d, &os(args), &[("BINFMTD_CONFIG_DIR", &etc)], false)
        }
        Via::Config { body } => {
            let etc = scratch.join("etc");
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(etc.join("binfmtd.toml"), body).unwrap();
            let args = os(&["daemon", "--bus-address", "unix:path=/nonexistent/bus"]);
            binfmtd_in(d, &args, &[("BINFMTD_CONFIG_DIR", &etc)], false)
        }
        Via::State { file, body } => {
            let st = scratch.join("state");
            std::fs::create_dir_all(&st).unwrap();
            for f in walk(&d.root.join("state")) {
                if let Some(n) = f.file_name() {
                    let _ = std::fs::copy(&f, st.join(n));
                }
            }
            std::fs::write(st.join(file), body).unwrap();
            binfmtd_in(d, &os(&["status"]), &[("BINFMTD_STATE_DIR", &st)], false)
        }
        Via::Bus { args } => {
            let o = b.gdbus_call(
                None,
                &args[0],
                &args[1..].iter().map(String::as_str).collect::<Vec<_>>(),
            );
            let t = text(&o);
            let name = t
                .split(|c: char| c.is_whitespace() || c == ':')
                .find(|w| w.starts_with("org.binfmtd1.Error."))
                .map(str::to_string);
            let got = match (o.status.success(), name) {
                (true, _) => "success".to_string(),
                (false, Some(n)) => n,
                (false, None) => format!("failed without an error name ({})", o.status),
            };
            return (t, got);
        }
    };
    let code = out.status.code().map_or("signal".into(), |c| c.to_string());
    (text(&out), code)
}

#[test]
fn hostile_input_is_refused_cleanly_and_changes_nothing() {
    if !require_root() {
        return;
    }
    let b = Bus::start("");
    let root = b.dir.path().join("d");
    let d = Daemon::start(&b, &root);
    // Something to lose: another tool's entry, and a handler binfmtd owns.
    let o =
        d.sh("echo ':other-tool:E::hostile-ext::/bin/true:' > /proc/sys/fs/binfmt_misc/register");
    assert!(o.status.success(), "{}", text(&o));
    install(&b, &d, &["linux/arm64"]);
    let cases: Vec<Case> = [cli_cases(), file_cases(), bus_cases()]
        .into_iter()
        .flatten()
        .collect();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let scratch = tempfile::tempdir().unwrap();
        let before = snapshot(&d);
        let (out, got) = run(&d, &b, case, scratch.path());
        let after = snapshot(&d);
        let want = match case.want {
            Want::Code(c) => c.to_string(),
            Want::Error(e) => e.to_string(),
        };
        let lower = out.to_lowercase();
        let named =
            case.words.is_empty() || case.words.iter().any(|w| lower.contains(&w.to_lowercase()));
        let mut problems = Vec::new();
        if got != want {
            problems.push(format!("got {got}, want {want}"));
        }
        if !named {
            problems.push(format!("message names none of {:?}", case.words));
        }
        if out.contains("panicked") {
            problems.push("panicked".into());
        }
        if before != after {
            let gone: Vec<&str> = before.lines().filter(|l| !after.contains(l)).collect();
            let new: Vec<&str> = after.lines().filter(|l| !before.contains(l)).collect();
            problems.push(format!("changed state: lost {gone:?}, gained {new:?}"));
        }
        eprintln!(
            "{:<40} {:<40} {}",
            case.label,
            got,
            out.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
        );
        if !problems.is_empty() {
            wrong.push(format!("{}: {}\n{out}", case.label, problems.join("; ")));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n\n")
    );
}
