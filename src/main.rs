//! The `binfmtd` command: parse arguments, set up logging, dispatch, map errors to exit codes.

use binfmtd::cli::{run, Cli};
use clap::Parser;

fn main() {
    let cli = Cli::parse();
    let level = match cli.global.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BINFMTD_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let json = cli.global.json;
    let code = match run::run(cli) {
        Ok(code) => code,
        Err(e) => run::report_error(json, &e),
    };
    std::process::exit(code);
}
