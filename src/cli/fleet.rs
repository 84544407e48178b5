//! `platforms --require/--max-age` (readiness and liveness from the daemon's record) and
//! `metrics` (the Prometheus text of that record, or of a direct verification).

use super::{exit, run, Cli, PlatformsArgs};
use crate::ops::ready::{self, ReadyInput};
use crate::ops::{self, Context};
use crate::persist::daemon_status::{self, DaemonStatus};
use anyhow::Result;

/// The OCI platform each item of LIST stands for (a platform as given; a handler or arch
/// name as its handler's first platform). `all` is refused: readiness needs a list.
fn wanted(ctx: &Context, list: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for word in list.split(',').map(|w| w.trim().to_ascii_lowercase()) {
        if word.is_empty() {
            continue;
        }
        if word == "all" {
            anyhow::bail!(ops::OpsError::Select(crate::catalog::SelectError::Empty));
        }
        // Validates the name (unknown names are usage errors, exit 2).
        ctx.catalog.select(&word).map_err(ops::OpsError::from)?;
        let platform = if word.contains('/') {
            word
        } else {
            let name = ctx.catalog.resolve(&word).unwrap_or_default();
            ctx.catalog
                .get(&name)
                .map(|h| h.primary_platform())
                .unwrap_or(word)
        };
        if !out.contains(&platform) {
            out.push(platform);
        }
    }
    Ok(out)
}

fn render_ready(r: &ready::Readiness) -> String {
    let mut s = String::new();
    for q in &r.required {
        let mark = if q.ok { "ok  " } else { "FAIL" };
        s.push_str(&format!("{mark} {}\n", q.platform));
    }
    for p in &r.problems {
        s.push_str(&format!("not ready: {p}\n"));
    }
    if r.ready {
        s.push_str(&format!(
            "ready (daemon pid {}, record {:.0}s old)\n",
            r.daemon_pid, r.age_seconds
        ));
    }
    s
}

/// `platforms --require LIST` / `--max-age SECONDS`: exit 0 when ready, 1 when not.
pub fn readiness(cli: &Cli, a: &PlatformsArgs) -> Result<i32> {
    let ctx = run::context(cli)?;
    let platforms = match &a.require {
        Some(list) => wanted(&ctx, list)?,
        None => Vec::new(),
    };
    let status = match daemon_status::load(&cli.global.state_dir) {
        Ok(s) => s,
        Err(e) => {
            let r = serde_json::json!({"schema": "binfmtd.ready/v1", "ready": false, "problems": [e.to_string()]});
            run::emit(cli.global.json, &r, |_| format!("not ready: {e}\n"))?;
            return Ok(exit::FAILED);
        }
    };
    let snap = ctx.kernel.snapshot()?;
    let r = ready::decide(&ReadyInput {
        status: &status,
        platforms: &platforms,
        entries: &snap.entries,
        now: daemon_status::now(),
        max_age: a.max_age.map(|s| s as f64),
        daemon_alive: ready::daemon_alive(status.pid),
    });
    run::emit(cli.global.json, &r, render_ready)?;
    Ok(if r.ready { exit::OK } else { exit::FAILED })
}

/// A record from a direct verification (no daemon): platforms probed now, no counters.
fn direct(ctx: &Context) -> Result<DaemonStatus> {
    let report = ops::platforms(ctx)?;
    let (platforms, interpreters) = ready::record_of(&report, &ctx.cache());
    Ok(DaemonStatus {
        verified_at: Some(daemon_status::now()),
        probe_seconds: report.probe_seconds,
        platforms,
        interpreters,
        ..DaemonStatus::default()
    })
}

/// `metrics`: the running daemon's record, else a direct verification.
pub fn metrics(cli: &Cli) -> Result<i32> {
    let status = match daemon_status::load(&cli.global.state_dir) {
        Ok(s) if ready::daemon_alive(s.pid) => s,
        _ => direct(&run::context(cli)?)?,
    };
    run::emit(cli.global.json, &status, crate::metrics::render)?;
    Ok(exit::OK)
}
