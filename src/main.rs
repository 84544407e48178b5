//! The `binfmtd` command: parse arguments, set up logging, dispatch, map errors to exit codes.

use binfmtd::cli::{run, Cli, Command};
use clap::Parser;

fn main() {
    // Arguments first: nothing (bus, kernel, files) is touched before they parse.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(run::report_usage_error(e)),
    };
    let level = match (cli.global.verbose, &cli.command) {
        (0, Command::Daemon(_)) => "info",
        (0, _) => "warn",
        (1, _) => "info",
        _ => "debug",
    };
    binfmtd::logging::init(level);
    let json = cli.global.json;
    let code = match run::run(cli) {
        Ok(code) => code,
        Err(e) => run::report_error(json, &e),
    };
    std::process::exit(code);
}
