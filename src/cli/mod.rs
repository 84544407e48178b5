//! Command-line interface: clap definitions, dispatch, and exit codes.

pub mod docs;
pub mod exit;
pub mod export;
pub mod fleet;
pub mod output;
pub mod remote;
pub mod render;
pub mod render_ps;
pub mod run;

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (doctor: the binary will run; ps: listed, also when nothing is emulated)
  1  some handler failed to register or verify, an entry could not be changed (doctor: problems found, or the --pid process is blocked, spinning, stopped or a zombie)
  2  usage error, unknown platform, invalid handler file (catalog or drop-in), I/O error, or no such PID
  3  binfmt_misc or private instances unavailable (kernel, mount, user namespaces)
  4  not enough privilege (a capability such as CAP_SYS_ADMIN is missing; doctor --pid: the process cannot be read)
  5  the binfmtd daemon could not be reached or refused the call";

/// Register, verify, keep and diagnose binfmt_misc handlers for foreign-architecture binaries.
#[derive(Debug, Parser)]
#[command(name = "binfmtd", version, about, after_help = EXIT_CODES_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten, next_help_heading = "Global options")]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Print one JSON document (shapes in docs/json.md) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v, -vv); logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Act directly even when the binfmtd daemon is reachable (also BINFMTD_NO_DAEMON=1).
    #[arg(long, global = true, conflicts_with = "require_daemon")]
    pub no_daemon: bool,
    /// Make changes only through the binfmtd daemon; fail (exit 5) if it is not reachable.
    #[arg(long, global = true)]
    pub require_daemon: bool,
    /// binfmt_misc mount point.
    #[arg(long, global = true, env = "BINFMTD_BINFMT_MISC", default_value = crate::config::DEFAULT_BINFMT_MISC, value_name = "DIR")]
    pub binfmt_misc: PathBuf,
    /// Ownership state directory.
    #[arg(long, global = true, env = "BINFMTD_STATE_DIR", default_value = crate::config::DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Configuration directory (handler drop-ins in interpreters.d/).
    #[arg(long, global = true, env = "BINFMTD_CONFIG_DIR", default_value = crate::config::DEFAULT_CONFIG_DIR, value_name = "DIR")]
    pub config_dir: PathBuf,
    /// Where --persist writes systemd binfmt.d files.
    #[arg(long, global = true, env = "BINFMTD_BINFMT_D_DIR", default_value = crate::config::DEFAULT_BINFMT_D_DIR, value_name = "DIR")]
    pub binfmt_d_dir: PathBuf,
}

impl Global {
    pub fn paths(&self) -> crate::config::Paths {
        crate::config::Paths {
            binfmt_misc: self.binfmt_misc.clone(),
            state_dir: self.state_dir.clone(),
            config_dir: self.config_dir.clone(),
            binfmt_d_dir: self.binfmt_d_dir.clone(),
        }
    }
}

// Each subcommand's arguments are built only when it runs (or its help is asked for):
// building all of them on every start cost about a third of argument parsing.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Show the host ISA, natively runnable ISAs, kernel, page size, binfmt_misc and Rosetta.
    Host,
    /// List runnable platforms (native, plus emulated ones whose handler passes its probe).
    Platforms(PlatformsArgs),
    /// Show every binfmt_misc entry: owner, platform served, and whether it wins.
    Status,
    /// Print Prometheus metrics (text format): per platform registered/verified, probe
    /// duration, drift repairs, last reconcile, failed handlers, versions.
    Metrics,
    /// Register handlers: `all` or a list such as linux/arm64,riscv64,qemu-s390x,rosetta.
    Install(InstallArgs),
    /// Remove handlers binfmtd registered (others only with --force).
    Uninstall(EntryArgs),
    /// Enable handlers binfmtd registered (others only with --force).
    Enable(EntryArgs),
    /// Disable handlers binfmtd registered (others only with --force).
    Disable(EntryArgs),
    /// Print registrations as systemd binfmt.d or Debian binfmt-support files (current
    /// entries, or with LIST what `install LIST` would register).
    Export(ExportArgs),
    /// Run CMD in a private binfmt_misc instance (no root needed; Linux 6.7+).
    Sandbox(SandboxArgs),
    /// Say why a foreign binary, a script, or a whole root filesystem will fail under emulation.
    Doctor(crate::doctor::DoctorArgs),
    /// List the processes running under an emulator, by container, with what each thread does.
    Ps(PsArgs),
    /// Run the D-Bus service org.binfmtd1 that keeps handlers registered (systemd starts it).
    Daemon(DaemonArgs),
    /// Write man pages and shell completions generated from this command line (packaging).
    #[command(hide = true)]
    GenerateDocs(GenerateDocsArgs),
}

/// Options of `daemon`.
#[derive(Debug, Clone, Args)]
pub struct DaemonArgs {
    /// Serve on this D-Bus address instead of the system bus (DBUS_SYSTEM_BUS_ADDRESS is
    /// honoured for the system bus).
    #[arg(long, value_name = "ADDRESS", conflicts_with = "no_bus")]
    pub bus_address: Option<String>,
    /// Keep the desired state and repair drift without D-Bus (containers, Kubernetes nodes).
    #[arg(long)]
    pub no_bus: bool,
    /// Also re-check the desired state every SECONDS, on top of kernel events (default: events only).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub check_interval: Option<u64>,
    /// Keep the Prometheus text of `binfmtd metrics` current in PATH (written atomically after
    /// every check), for node_exporter's textfile collector. No network listener.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

/// Options of `ps`.
#[derive(Debug, Clone, Args)]
pub struct PsArgs {
    /// Only the processes of this container (id, id prefix of 3+ characters, or name).
    #[arg(long, value_name = "ID")]
    pub container: Option<String>,
    /// Seconds between the two samples that measure CPU use and progress; 0: one pass.
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = parse_sample)]
    pub sample: f64,
}

/// A sampling window in seconds: 0 to 60.
fn parse_sample(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=60.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds from 0 to 60 (e.g. 1 or 0.5)"
        )),
    }
}

/// Options of the hidden `generate-docs` command.
#[derive(Debug, Clone, Args)]
pub struct GenerateDocsArgs {
    /// Output directory; `man/` and `completions/` are created inside.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

/// The file formats of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// systemd's binfmt.d(5): one register line per entry.
    #[value(name = "binfmt.d")]
    BinfmtD,
    /// Debian's binfmt-support import files (`/usr/share/binfmts/NAME`, `update-binfmts --import`).
    #[value(name = "binfmt-support")]
    BinfmtSupport,
}

/// Options of `export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// `all` or a list: export what `install LIST` would register instead of the kernel's entries.
    #[arg(value_name = "LIST")]
    pub list: Option<String>,
    /// Write the files into DIR (binfmt.d: binfmtd-export.conf; binfmt-support: one per entry)
    /// instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Options of `platforms`.
#[derive(Debug, Clone, Args)]
pub struct PlatformsArgs {
    /// List every handler binfmtd knows with the names it answers to; probe nothing.
    #[arg(long, conflicts_with_all = ["require", "max_age"])]
    pub known: bool,
    /// Readiness: exit 0 only if every platform in LIST is registered and passed its probe in
    /// the daemon's last verification (read from its record in the state directory; no probe
    /// runs), else 1.
    #[arg(long, value_name = "LIST")]
    pub require: Option<String>,
    /// Liveness: also exit 1 unless the daemon that wrote the record runs and wrote it within
    /// SECONDS (run it with --check-interval below SECONDS).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_age: Option<u64>,
}

/// Options of `install`.
#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// `all`, or comma-separated OCI platforms, arch names or handler names.
    #[arg(value_name = "all|LIST")]
    pub list: String,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print the exact register lines; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write systemd binfmt.d files, so entries come back after reboot.
    #[arg(long)]
    pub persist: bool,
    /// Skip running a probe through each handler.
    #[arg(long)]
    pub no_verify: bool,
}

/// Flag and conflict policy options.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Exact flags for every handler (subset of POCF), replacing the defaults (`OPF`: Debian's).
    #[arg(long, value_name = "FLAGS")]
    pub flags: Option<String>,
    /// Set the C flag (credentials from the binary: setuid/sudo work, but every setuid foreign
    /// binary then runs the translator as root under the caller's environment; off by default,
    /// see docs/security.md).
    #[arg(long, overrides_with = "no_credentials")]
    pub credentials: bool,
    /// Clear the C flag.
    #[arg(long)]
    pub no_credentials: bool,
    /// Set the P flag (keep argv[0]; needed by busybox-style multi-call binaries).
    #[arg(long, overrides_with = "no_preserve_argv0")]
    pub preserve_argv0: bool,
    /// Clear the P flag.
    #[arg(long)]
    pub no_preserve_argv0: bool,
    /// Replace entries that binfmtd did not create.
    #[arg(long)]
    pub force: bool,
    /// Allow the F flag with a dynamically linked interpreter.
    #[arg(long)]
    pub allow_dynamic: bool,
    /// Use qemu-x86_64 even where a healthy Rosetta is available.
    #[arg(long)]
    pub no_prefer_rosetta: bool,
}

/// Options of uninstall/enable/disable.
#[derive(Debug, Clone, Args)]
pub struct EntryArgs {
    /// `all` (every entry binfmtd owns) or a comma-separated list.
    #[arg(value_name = "all|LIST")]
    pub list: String,
    /// Also act on entries binfmtd did not create.
    #[arg(long)]
    pub force: bool,
    /// Show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Options of `sandbox`.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Handlers to install (default: every available non-native handler).
    #[arg(long, value_name = "LIST", conflicts_with = "empty")]
    pub platform: Option<String>,
    /// Start with an empty binfmt_misc instance; install nothing.
    #[arg(long)]
    pub empty: bool,
    /// chroot into this foreign root filesystem before running CMD.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Skip running a probe through each handler.
    #[arg(long)]
    pub no_verify: bool,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

impl PolicyArgs {
    /// Converts to the planner's policy; bad flag strings are usage errors.
    pub fn policy(&self) -> Result<crate::plan::InstallPolicy, crate::model::UnknownFlag> {
        let flags = self
            .flags
            .as_deref()
            .map(crate::model::Flags::parse)
            .transpose()?;
        let tri = |on: bool, off: bool| match (on, off) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        Ok(crate::plan::InstallPolicy {
            flags,
            credentials: tri(self.credentials, self.no_credentials),
            preserve_argv0: tri(self.preserve_argv0, self.no_preserve_argv0),
            force: self.force,
            allow_dynamic: self.allow_dynamic,
            no_prefer_rosetta: self.no_prefer_rosetta,
        })
    }
}
