//! Dispatches parsed commands to the library and prints their reports.

use super::remote::{self, Request};
use super::{exit, render, Cli, Command, EntryArgs, InstallArgs};
use crate::engine::{self, EntriesRequest, InstallOptions, InstallRequest, Origin};
use crate::ops::{self, Context};
use crate::plan::EntryOp;
use anyhow::{Context as _, Result};
use serde::Serialize;

pub(super) fn emit<T: Serialize>(
    json: bool,
    report: &T,
    human: impl FnOnce(&T) -> String,
) -> Result<()> {
    let text = if json {
        serde_json::to_string_pretty(report).context("cannot serialize the report")? + "\n"
    } else {
        human(report)
    };
    super::output::out(&text).context("cannot write the report to stdout")
}

pub(super) fn context(cli: &Cli) -> Result<Context> {
    Context::system(cli.global.paths()).context("cannot load the handler catalog")
}

/// Sends a mutating request to the daemon when it may and can; `None`: act directly.
fn via_daemon(
    cli: &Cli,
    req: &Request,
    dry_run: bool,
    policy: Option<&super::PolicyArgs>,
) -> Result<Option<i32>> {
    let unreachable = |reason: String| remote::RemoteError::Unreachable {
        operation: remote::name(req),
        reason,
    };
    if let Err(reason) = remote::eligible(&cli.global, remote::no_daemon_env(), dry_run, policy) {
        if cli.global.require_daemon {
            return Err(unreachable(reason).into());
        }
        tracing::info!("acting directly: {reason}");
        return Ok(None);
    }
    let Some(r) = remote::send(req)? else {
        if cli.global.require_daemon {
            return Err(unreachable("org.binfmtd1 is not on the system bus".into()).into());
        }
        return Ok(None);
    };
    emit(cli.global.json, &r, render::remote)?;
    Ok(Some(if r.ok { exit::OK } else { exit::FAILED }))
}

fn entries(cli: &Cli, a: &EntryArgs, op: EntryOp) -> Result<i32> {
    let ctx = context(cli)?;
    let req = EntriesRequest {
        selection: ctx.catalog.select(&a.list).map_err(ops::OpsError::from)?,
        op,
        force: a.force,
        dry_run: a.dry_run,
    };
    let wire = Request::Entries(req.clone());
    if a.force && cli.global.require_daemon {
        let reason = "--force on existing entries is not part of the D-Bus API".to_string();
        return Err(remote::RemoteError::Unreachable {
            operation: remote::name(&wire),
            reason,
        }
        .into());
    }
    if !a.force {
        if let Some(code) = via_daemon(cli, &wire, a.dry_run, None)? {
            return Ok(code);
        }
    }
    let r = engine::change_entries(&ctx, &req)?;
    emit(cli.global.json, &r, render::entries)?;
    Ok(if r.ok { exit::OK } else { exit::FAILED })
}

fn install(cli: &Cli, a: &InstallArgs) -> Result<i32> {
    let ctx = context(cli)?;
    let req = InstallRequest {
        selection: ctx.catalog.select(&a.list).map_err(ops::OpsError::from)?,
        options: InstallOptions {
            policy: a.policy.policy()?,
            persist: a.persist,
            verify: !a.no_verify,
        },
        dry_run: a.dry_run,
        origin: Origin::Request,
    };
    let wire = Request::Install(req.clone());
    if let Some(code) = via_daemon(cli, &wire, a.dry_run, Some(&a.policy))? {
        return Ok(code);
    }
    let r = engine::install(&ctx, &req)?;
    emit(cli.global.json, &r, render::install)?;
    Ok(if r.ok { exit::OK } else { exit::FAILED })
}

/// `binfmtd doctor`: a file, a root, a run, or a running process.
fn doctor(cli: &Cli, a: &crate::doctor::DoctorArgs) -> Result<i32> {
    let ctx = context(cli)?;
    let host = ctx.host_with(&mut ctx.cache(), true);
    let owned = ctx.state.peek().state;
    let dctx = crate::doctor::DoctorContext::from_system(ctx.kernel.as_ref(), ctx.catalog, &host)
        .with_ownership(&owned);
    let r = match a.pid {
        Some(_) => {
            let src = crate::procs::source::LiveProc::new();
            crate::doctor::execute_pid(a, &dctx, &src)?
        }
        None => crate::doctor::execute(a, &dctx)?,
    };
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
    emit(cli.global.json, &r, |r| {
        crate::doctor::render_human(r, color)
    })?;
    Ok(r.exit_code())
}

/// Runs one parsed command and returns its exit code.
pub fn run(cli: Cli) -> Result<i32> {
    let json = cli.global.json;
    match &cli.command {
        Command::Host => {
            let ctx = context(&cli)?;
            emit(json, &ctx.host(), render::host)?;
            Ok(exit::OK)
        }
        Command::Status => {
            let ctx = context(&cli)?;
            let mut r = ops::status(&ctx)?;
            r.route = Some(remote::probe_route(&cli.global, remote::no_daemon_env()));
            emit(json, &r, render::status)?;
            Ok(exit::OK)
        }
        Command::Platforms(a) if a.require.is_some() || a.max_age.is_some() => {
            super::fleet::readiness(&cli, a)
        }
        Command::Metrics => super::fleet::metrics(&cli),
        Command::Platforms(a) if a.known => {
            let ctx = context(&cli)?;
            emit(json, &ops::status::known(&ctx.catalog), render::known)?;
            Ok(exit::OK)
        }
        Command::Platforms(_) => {
            let ctx = context(&cli)?;
            emit(json, &ops::platforms(&ctx)?, render::platforms)?;
            Ok(exit::OK)
        }
        Command::Install(a) => install(&cli, a),
        Command::Ps(a) => {
            let ctx = context(&cli)?;
            let opts = crate::procs::ScanOptions {
                window: std::time::Duration::from_secs_f64(a.sample),
                container: a.container.clone(),
                viewer: crate::procs::Viewer::Everything,
                host_arch: std::env::consts::ARCH.to_string(),
            };
            let interps = crate::procs::guest::Interpreters::from_catalog(&ctx.catalog);
            let src = crate::procs::source::LiveProc::new();
            let r = crate::procs::scan(&src, &interps, &opts)?;
            emit(json, &r, super::render_ps::ps)?;
            Ok(exit::OK)
        }
        Command::Doctor(a) => doctor(&cli, a),
        Command::Daemon(a) => {
            let front: Option<Box<dyn crate::daemon::Front>> = match a.no_bus {
                true => None,
                false => Some(Box::new(crate::dbus::serve::BusFront::new(
                    a.bus_address.clone(),
                ))),
            };
            let opts = crate::daemon::DaemonOptions {
                paths: cli.global.paths(),
                safety_interval: a.check_interval.map(std::time::Duration::from_secs),
                metrics_file: a.metrics_file.clone(),
                skip_caps: false,
            };
            crate::daemon::run_blocking(opts, front)?;
            Ok(exit::OK)
        }
        Command::Uninstall(a) => entries(&cli, a, EntryOp::Remove),
        Command::Enable(a) => entries(&cli, a, EntryOp::Enable),
        Command::Disable(a) => entries(&cli, a, EntryOp::Disable),
        Command::Export(a) => super::export::run(&cli, a),
        Command::GenerateDocs(a) => {
            super::docs::generate(&a.dir)?;
            Ok(exit::OK)
        }
        Command::Sandbox(a) => {
            let req = crate::sandbox::SandboxRequest {
                platforms: a.platform.clone(),
                empty: a.empty,
                root: a.root.clone(),
                command: a.command.clone(),
                options: InstallOptions {
                    policy: a.policy.policy()?,
                    persist: false,
                    verify: !a.no_verify,
                },
            };
            let (_ctx, report) = crate::sandbox::prepare(&cli.global.paths(), &req)?;
            if let Some(r) = &report {
                // The command owns stdout; the install summary goes to stderr.
                if json {
                    eprintln!("{}", serde_json::to_string(r).unwrap_or_default());
                } else if cli.global.verbose > 0 || !r.ok {
                    eprint!("{}", render::install(r));
                }
            }
            match crate::sandbox::exec(&req)? {}
        }
    }
}

/// Prints an error (chain, or JSON) and returns its exit code.
pub fn report_error(json: bool, err: &anyhow::Error) -> i32 {
    let code = exit::code_for(err);
    if json {
        let chain: Vec<String> = err.chain().map(|c| c.to_string()).collect();
        let doc = serde_json::json!({"schema": "binfmtd.error/v1", "error": err.to_string(), "causes": chain, "exit_code": code});
        let _ =
            super::output::out(&(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"));
    } else {
        super::output::err(&format!("binfmtd: {err}\n"));
        for cause in err.chain().skip(1) {
            super::output::err(&format!("  caused by: {cause}\n"));
        }
    }
    code
}

/// Reports a command-line error: clap's text, or a `binfmtd.error/v1` document when `--json`
/// was asked for. `--help` and `--version` print as usual and exit 0.
pub fn report_usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    let json = std::env::args_os().any(|a| a == "--json");
    if json
        && !matches!(
            e.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        )
    {
        let message = e.to_string();
        let first = message
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string();
        let doc = serde_json::json!({"schema": "binfmtd.error/v1", "error": first, "causes": [message], "exit_code": exit::USAGE});
        let _ =
            super::output::out(&(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"));
        return exit::USAGE;
    }
    let _ = e.print();
    if e.use_stderr() {
        exit::USAGE
    } else {
        exit::OK
    }
}
