//! `binfmtd export`: gathers registrations (the kernel's, or an install plan's) and writes them
//! in the chosen file format.

use super::{exit, run, Cli, ExportArgs, ExportFormat};
use crate::engine::{self, InstallOptions, InstallRequest, Origin};
use crate::ops::{self, Context};
use crate::persist::export::{self, Exported, Format, Source};
use anyhow::{Context as _, Result};

/// The current kernel entries, each with the platform it serves.
fn from_kernel(ctx: &Context) -> Result<Vec<Source>> {
    let snap = ctx.kernel.snapshot()?;
    if !snap.mounted {
        return Err(crate::kernel::KernelError::NotMounted(snap.path).into());
    }
    // readdir lists the newest entry first; the files list the oldest first, so that applying
    // them in order gives the same precedence between entries of the same magic.
    Ok(snap
        .entries
        .iter()
        .rev()
        .map(|e| Source {
            rule: e.to_rule(),
            platform: ops::status::served_isa(&ctx.catalog, e).map(|(_, p, _)| p),
            enabled: e.enabled,
        })
        .collect())
}

/// What `install LIST` would register (a dry run: nothing changes), plus the handlers that
/// the plan fails, as entries that could not be exported.
fn from_plan(ctx: &Context, a: &ExportArgs, list: &str) -> Result<(Vec<Source>, Vec<Exported>)> {
    let req = InstallRequest {
        selection: ctx.catalog.select(list).map_err(ops::OpsError::from)?,
        options: InstallOptions {
            policy: a.policy.policy()?,
            persist: false,
            verify: false,
        },
        dry_run: true,
        origin: Origin::Request,
    };
    let report = engine::install(ctx, &req)?;
    let mut sources = Vec::new();
    let mut failed = Vec::new();
    for h in report.handlers {
        match (&h.plan.rule, h.plan.action.yields_entry(), &h.error) {
            (Some(rule), true, None) => sources.push(Source {
                rule: rule.clone(),
                platform: Some(h.plan.platform.clone()),
                enabled: true,
            }),
            (_, _, Some(err)) => failed.push(Exported {
                name: h.plan.handler.clone(),
                platform: Some(h.plan.platform.clone()),
                line: None,
                file: String::new(),
                text: None,
                error: Some(format!("install would fail: {err}")),
                note: None,
            }),
            _ => {}
        }
    }
    Ok((sources, failed))
}

fn render(x: &export::Export) -> String {
    let mut out = x.text();
    for e in &x.entries {
        if let Some(err) = &e.error {
            eprintln!("binfmtd: not exported: {err}");
        }
        if let Some(note) = &e.note {
            eprintln!("binfmtd: {}: {note}", e.name);
        }
    }
    if x.files.is_empty() && out.is_empty() {
        out = "# nothing to export\n".into();
    }
    out
}

/// Runs `export`; exit 1 when an entry could not be expressed in the format.
pub fn run(cli: &Cli, a: &ExportArgs) -> Result<i32> {
    let ctx = run::context(cli)?;
    let format = match a.format {
        ExportFormat::BinfmtD => Format::BinfmtD,
        ExportFormat::BinfmtSupport => Format::BinfmtSupport,
    };
    let (source, items, failed) = match &a.list {
        Some(list) => {
            let (items, failed) = from_plan(&ctx, a, list)?;
            ("plan", items, failed)
        }
        None => ("kernel", from_kernel(&ctx)?, Vec::new()),
    };
    let header = format!(
        "binfmt.d(5) file exported by binfmtd {} from the {source}.\nOne register line per entry; systemd-binfmt writes each to /proc/sys/fs/binfmt_misc/register.",
        env!("CARGO_PKG_VERSION")
    );
    let mut x = export::export(format, source, &items, &header);
    x.ok &= failed.is_empty();
    x.entries.extend(failed);
    if let Some(dir) = &a.dir {
        for (name, text) in &x.files {
            let path = dir.join(name);
            crate::persist::atomic::write(&path, text.as_bytes(), 0o644).with_context(|| {
                format!(
                    "cannot write {}; check that the directory is writable",
                    path.display()
                )
            })?;
        }
    }
    if a.dir.is_some() && !cli.global.json {
        for e in &x.entries {
            if let Some(err) = &e.error {
                eprintln!("binfmtd: not exported: {err}");
            }
        }
    } else {
        run::emit(cli.global.json, &x, render)?;
    }
    Ok(if x.ok { exit::OK } else { exit::FAILED })
}
