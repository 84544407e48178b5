//! Runs `binfmtd::daemon::run` the way `binfmtd daemon` will once the CLI wires it; the
//! end-to-end tests start this. Paths come from BINFMTD_* like the CLI's global options.
//!
//! Usage: daemon [--bus-address ADDRESS] [--check-interval SECONDS]

use binfmtd::config::{self, Paths};
use binfmtd::daemon::{run_blocking, DaemonOptions};
use std::path::PathBuf;
use std::time::Duration;

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn main() -> std::process::ExitCode {
    let mut bus_address = None;
    let mut safety_interval = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--bus-address", Some(v)) => bus_address = Some(v),
            ("--check-interval", Some(v)) => match v.parse::<u64>() {
                Ok(s) => safety_interval = Some(Duration::from_secs(s)),
                Err(e) => {
                    eprintln!("--check-interval {v:?}: {e}; pass whole seconds");
                    return std::process::ExitCode::from(2);
                }
            },
            (other, _) => {
                eprintln!("unknown argument {other:?}; usage: daemon [--bus-address ADDRESS] [--check-interval SECONDS]");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let opts = DaemonOptions {
        bus_address,
        paths: Paths {
            binfmt_misc: env_path("BINFMTD_BINFMT_MISC", config::DEFAULT_BINFMT_MISC),
            state_dir: env_path("BINFMTD_STATE_DIR", config::DEFAULT_STATE_DIR),
            config_dir: env_path("BINFMTD_CONFIG_DIR", config::DEFAULT_CONFIG_DIR),
            binfmt_d_dir: env_path("BINFMTD_BINFMT_D_DIR", config::DEFAULT_BINFMT_D_DIR),
        },
        safety_interval,
        skip_caps: false,
    };
    match run_blocking(opts) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("binfmtd daemon: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
