//! Test harness for the daemon: a private system-type dbus-daemon that includes the project's
//! own bus policy, the daemon inside a private binfmt_misc instance (user + mount namespace),
//! and real clients (busctl, gdbus) run as root or as nobody via setpriv.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const NOBODY: u32 = 65534;

/// Installs platforms as root over the bus (busctl), asserting success; returns busctl's output.
pub fn install(bus: &Bus, daemon: &Daemon, platforms: &[&str]) -> String {
    let n = platforms.len().to_string();
    let mut args = vec![
        "call",
        "org.binfmtd1",
        "/org/binfmtd1",
        "org.binfmtd1.Manager",
        "Install",
        "asa{sv}b",
        &n,
    ];
    args.extend_from_slice(platforms);
    args.extend(["0", "false"]);
    let out = bus.busctl(None, &args);
    assert!(out.status.success(), "{}\n{}", text(&out), daemon.log());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Tests need root (for setpriv and a system-type bus); say so plainly otherwise.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIPPED: daemon end-to-end tests need root (setpriv to another uid)");
    false
}

/// The binary under test; the daemon is its `daemon` command.
pub fn daemon_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_binfmtd"))
}

pub struct Bus {
    pub dir: tempfile::TempDir,
    pub address: String,
    child: Child,
}

impl Bus {
    /// Starts a system-type dbus-daemon whose policy is the default deny-own/allow-call
    /// system policy plus `packaging/dbus-1/system.d/org.binfmtd1.conf`, and `extra`.
    pub fn start(extra: &str) -> Bus {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("bus.sock");
        let policy = repo().join("packaging/dbus-1/system.d/org.binfmtd1.conf");
        let config = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  {extra}
  <include>{policy}</include>
</busconfig>
"#,
            socket = socket.display(),
            policy = policy.display(),
        );
        let config_path = dir.path().join("bus.conf");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config_path.display()))
            .args(["--nofork", "--nopidfile", "--nosyslog"])
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "dbus-daemon did not create {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Bus {
            address: format!("unix:path={}", socket.display()),
            dir,
            child,
        }
    }

    /// A zbus connection to this bus, as the test process (root).
    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .build()
            .await
            .unwrap()
    }

    /// Runs `busctl --address=... ARGS` as root or as `uid`.
    pub fn busctl(&self, uid: Option<u32>, args: &[&str]) -> Output {
        let mut argv = vec!["busctl".to_string(), format!("--address={}", self.address)];
        argv.extend(args.iter().map(|s| s.to_string()));
        run_as(uid, &argv)
    }

    /// Runs `gdbus call --address ... --dest org.binfmtd1 ... --method org.binfmtd1.Manager.M ARGS`.
    pub fn gdbus_call(&self, uid: Option<u32>, method: &str, args: &[&str]) -> Output {
        let mut argv: Vec<String> = [
            "gdbus",
            "call",
            "--address",
            &self.address,
            "--dest",
            "org.binfmtd1",
            "--object-path",
            "/org/binfmtd1",
            "--method",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.push(format!("org.binfmtd1.Manager.{method}"));
        argv.extend(args.iter().map(|s| s.to_string()));
        run_as(uid, &argv)
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs argv as root, or as `uid` (gid too, no supplementary groups) via setpriv.
pub fn run_as(uid: Option<u32>, argv: &[String]) -> Output {
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .args(argv);
            c
        }
        None => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    cmd.env_remove("DBUS_SESSION_BUS_ADDRESS").env("HOME", "/");
    cmd.output().unwrap()
}

pub fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A user + mount namespace with a private binfmt_misc instance, kept alive by a holder
/// process so that the daemon can be killed and restarted inside the same instance.
pub struct Daemon {
    pub root: PathBuf,
    /// The namespace holder (a `sleep` in the namespaces).
    pub holder: u32,
    holder_child: Child,
    daemon: Option<Child>,
    address: String,
}

impl Daemon {
    /// Creates the namespace, then starts the daemon in it. Directories under `root`:
    /// etc (config), state, binfmt.d, and daemon.log.
    pub fn start(bus: &Bus, root: &Path) -> Daemon {
        for d in ["etc", "state", "binfmt.d"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let ready = root.join("ns-ready");
        let script = format!(
            "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && touch '{}' && exec sleep 100000",
            ready.display()
        );
        let holder_child = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "namespace holder did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut daemon = Daemon {
            root: root.to_path_buf(),
            holder: holder_child.id(),
            holder_child,
            daemon: None,
            address: bus.address.clone(),
        };
        daemon.spawn_daemon();
        daemon
    }

    /// Starts (or restarts) the daemon inside the namespace and waits for READY=1.
    pub fn spawn_daemon(&mut self) {
        let notify = self.root.join("notify.sock");
        let _ = std::fs::remove_file(&notify);
        let listener = UnixDatagram::bind(&notify).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("daemon.log"))
            .unwrap();
        let child = Command::new("nsenter")
            .args([
                "-t",
                &self.holder.to_string(),
                "-U",
                "-m",
                "--preserve-credentials",
            ])
            .arg(daemon_exe())
            .args(["daemon", "--bus-address", &self.address])
            .env("NOTIFY_SOCKET", &notify)
            .env("BINFMTD_CONFIG_DIR", self.root.join("etc"))
            .env("BINFMTD_STATE_DIR", self.root.join("state"))
            .env("BINFMTD_BINFMT_D_DIR", self.root.join("binfmt.d"))
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let mut buf = [0u8; 4096];
        loop {
            match listener.recv(&mut buf) {
                Ok(n)
                    if String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .any(|l| l == "READY=1") =>
                {
                    break
                }
                Ok(_) => continue,
                Err(e) => panic!("daemon did not report READY=1 ({e}); log:\n{}", self.log()),
            }
        }
    }

    /// The daemon's pid (nsenter execs it, so it is the child's pid).
    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.root.join("daemon.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Runs a shell script as root inside the daemon's namespaces (its binfmt_misc).
    pub fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args([
                "-t",
                &self.holder.to_string(),
                "-U",
                "-m",
                "--preserve-credentials",
                "sh",
                "-c",
                script,
            ])
            .output()
            .unwrap()
    }

    /// Every entry file of the private instance, as text (name, then content).
    pub fn kernel_state(&self) -> String {
        let out = self.sh("cd /proc/sys/fs/binfmt_misc && cat status && for f in $(ls | sort); do [ \"$f\" = register ] || [ \"$f\" = status ] || { echo \"== $f\"; cat \"$f\"; }; done");
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Polls `cond` every 50 ms for up to `limit`; returns how long it took.
    pub fn wait_for(&self, limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if cond() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.holder_child.kill();
        let _ = self.holder_child.wait();
        if let Some(mut c) = self.daemon.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
