//! Applies plans through the kernel seam, records ownership, persists, and verifies.

use super::verify::{self, Verification};
use super::{Context, OpsError};
use crate::catalog::discover;
use crate::catalog::Selection;
use crate::kernel::{mount, EntryAction};
use crate::persist::{binfmt_d, OwnedEntry};
use crate::plan::{self, Action, EntryDecision, EntryOp, EntryPlan, HandlerPlan, InstallPolicy};
use serde::Serialize;

/// An install request, as given on the command line or over D-Bus.
#[derive(Debug, Clone, Default)]
pub struct InstallRequest {
    /// `all` or a comma-separated list.
    pub list: String,
    pub policy: InstallPolicy,
    pub dry_run: bool,
    /// Write systemd binfmt.d files.
    pub persist: bool,
    /// Run probes after registering (on by default).
    pub verify: bool,
}

/// Result for one handler.
#[derive(Debug, Clone, Serialize)]
pub struct HandlerResult {
    #[serde(flatten)]
    pub plan: HandlerPlan,
    /// `ok`, `skipped` or `failed`.
    pub result: &'static str,
    pub error: Option<String>,
    pub verify: Option<Verification>,
    pub persisted: Option<String>,
}

/// What `install` reports.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    pub schema: &'static str,
    pub binfmt_misc: String,
    pub dry_run: bool,
    pub mounted_now: bool,
    pub native: Vec<String>,
    pub handlers: Vec<HandlerResult>,
    pub warnings: Vec<String>,
    pub probe_seconds: Option<f64>,
    pub ok: bool,
}

fn failed(r: &mut HandlerResult, why: String) {
    r.result = "failed";
    r.error = Some(why);
}

/// Plans and (unless dry-run) applies an install, then verifies each handler.
pub fn install(ctx: &Context, req: &InstallRequest) -> Result<InstallReport, OpsError> {
    let selection = ctx.catalog.select(&req.list)?;
    let mut cache = ctx.cache();
    let cache_before = cache.clone();
    let host = ctx.host_with(&mut cache, true);
    let mut warnings = Vec::new();
    if let Some(e) = &host.probe_error {
        warnings.push(format!(
            "native ISAs were guessed from QEMU's family table: {e}"
        ));
    }
    let mounted_now = if req.dry_run {
        false
    } else {
        mount::ensure_mounted(&ctx.kernel.path())? == mount::MountOutcome::MountedNow
    };
    let _lock = if req.dry_run {
        None
    } else {
        Some(ctx.state.lock()?)
    };
    let loaded = if req.dry_run {
        ctx.state.peek()
    } else {
        ctx.state.load()
    };
    warnings.extend(loaded.warning);
    let mut state = loaded.state;
    let loaded_state = state.clone();
    let snap = ctx.kernel.snapshot()?;
    if !req.dry_run && !snap.mounted {
        return Err(crate::kernel::KernelError::NotMounted(snap.path).into());
    }
    if snap.mounted && !snap.enabled {
        warnings.push("binfmt_misc is globally disabled (status is 0): no handler runs until `echo 1 > status`".into());
    }
    let preserve = req.policy.preserve_argv0.unwrap_or(false)
        || req.policy.flags.is_some_and(|f| f.preserve_argv0);
    let names = plan::candidates(&ctx.catalog, &selection, host.rosetta.healthy, &req.policy);
    let search = discover::search_path();
    let wanted: Vec<&crate::catalog::Handler> = names
        .iter()
        .filter_map(|n| ctx.catalog.get(n))
        .filter(|h| !host.native.contains(&h.arch))
        .collect();
    let interpreters = discover::discover_many(&wanted, &search, preserve, Some(&cache));
    for i in interpreters.values().flatten() {
        if let Some(id) = crate::persist::cache::FileId::of(&i.path) {
            cache.interpreters.insert(i.path.clone(), (id, i.clone()));
        }
    }
    let plans = plan::plan_install(&plan::PlanInput {
        catalog: &ctx.catalog,
        selection: &selection,
        native: &host.native,
        entries: &snap.entries,
        state: &state,
        interpreters: &interpreters,
        rosetta_healthy: host.rosetta.healthy,
        policy: &req.policy,
    });
    // An entry file the kernel lists but that could not be parsed still holds its name:
    // registering under that name would fail with EEXIST, so treat it as someone else's.
    let plans: Vec<_> = plans
        .into_iter()
        .map(|mut p| {
            let blocked = snap.unreadable.iter().find(|(n, _)| *n == p.handler);
            if let (Some((name, why)), Action::Register) = (blocked, &p.action) {
                p.warnings
                    .push(format!("entry {name} exists but cannot be read ({why})"));
                p.action = Action::SkipForeign {
                    provider: name.clone(),
                    wins: false,
                };
            }
            p
        })
        .collect();
    let mut results: Vec<HandlerResult> = plans
        .into_iter()
        .map(|p| {
            let result = match &p.action {
                Action::Fail { reason } => {
                    let e = Some(reason.clone());
                    return HandlerResult {
                        plan: p,
                        result: "failed",
                        error: e,
                        verify: None,
                        persisted: None,
                    };
                }
                a if a.yields_entry() => "ok",
                _ => "skipped",
            };
            HandlerResult {
                plan: p,
                result,
                error: None,
                verify: None,
                persisted: None,
            }
        })
        .collect();
    if req.dry_run {
        let ok = results.iter().all(|r| r.result != "failed");
        return Ok(report(
            ctx,
            req,
            mounted_now,
            host.native,
            results,
            warnings,
            None,
            ok,
        ));
    }
    // Record intent for every entry about to be written, in one atomic save: a kill between
    // here and the writes leaves state entries for absent kernel entries, which the next
    // install simply registers.
    for r in results.iter().filter(|r| r.result == "ok") {
        if let (Action::Register | Action::Replace { .. }, Some(rule), Some(line)) =
            (&r.plan.action, &r.plan.rule, &r.plan.line)
        {
            let previous = state.entries.get(&rule.name).map(|o| o.line.clone());
            state.entries.insert(
                rule.name.clone(),
                OwnedEntry {
                    handler: r.plan.handler.clone(),
                    platform: r.plan.platform.clone(),
                    line: line.clone(),
                    persisted: None,
                    previous,
                },
            );
        }
    }
    let before_intent = loaded_state.clone();
    if state != loaded_state {
        ctx.state.save(&state)?;
    }
    let saved = state.clone();
    for r in results.iter_mut().filter(|r| r.result == "ok") {
        let Some(rule) = r.plan.rule.clone() else {
            continue;
        };
        let step = (|| -> Result<(), String> {
            match &r.plan.action {
                Action::Register | Action::Replace { .. } => {
                    if let Action::Replace { remove } = &r.plan.action {
                        for name in remove {
                            ctx.kernel
                                .act(name, EntryAction::Remove)
                                .map_err(|e| e.to_string())?;
                            if *name != rule.name {
                                state.entries.remove(name);
                            }
                        }
                    }
                    ctx.kernel.register(&rule).map_err(|e| e.to_string())
                }
                Action::Enable => ctx
                    .kernel
                    .act(&rule.name, EntryAction::Enable)
                    .map_err(|e| e.to_string()),
                _ => Ok(()),
            }
        })();
        if let Err(e) = step {
            if matches!(r.plan.action, Action::Register | Action::Replace { .. }) {
                // Back to what was recorded before this install (the old entry, if any).
                match before_intent.entries.get(&rule.name) {
                    Some(old) => state.entries.insert(rule.name.clone(), old.clone()),
                    None => state.entries.remove(&rule.name),
                };
            }
            failed(r, e);
            continue;
        }
        if let Some(o) = state.entries.get_mut(&rule.name) {
            o.previous = None;
        }
        if req.persist
            && matches!(
                r.plan.action,
                Action::Register
                    | Action::Replace { .. }
                    | Action::Enable
                    | Action::Keep { owned: true }
            )
        {
            match binfmt_d::write(&ctx.paths.binfmt_d_dir, &rule) {
                Ok(path) => {
                    r.persisted = Some(path.display().to_string());
                    if let Some(o) = state.entries.get_mut(&rule.name) {
                        o.persisted = Some(path);
                    }
                }
                Err(e) => failed(
                    r,
                    format!(
                        "registered, but cannot write binfmt.d file in {}: {e}",
                        ctx.paths.binfmt_d_dir.display()
                    ),
                ),
            }
        }
    }
    if state != saved {
        ctx.state.save(&state)?;
    }
    // Verify: read back, then probe every handler that should now work.
    let after = ctx.kernel.snapshot()?;
    let mut probe_seconds = None;
    let mut to_probe = Vec::new();
    // A foreign entry that wins is left alone, but still proven (or not) by the probe.
    for r in results.iter_mut() {
        if let Action::SkipForeign {
            provider,
            wins: true,
        } = &r.plan.action
        {
            if req.verify {
                to_probe.push(r.plan.arch.clone());
            }
            r.verify = Some(Verification {
                read_back: true,
                read_back_detail: None,
                wins: false,
                probe: None,
                chrooted: false,
            });
            r.plan.warnings.push(format!("{provider} serves this ISA"));
        }
    }
    for r in results.iter_mut().filter(|r| r.result == "ok") {
        let Some(rule) = &r.plan.rule else { continue };
        let (ok, detail) = verify::read_back(rule, &after.entries);
        let header = ctx
            .catalog
            .get(&r.plan.handler)
            .map(plan::sample_header)
            .unwrap_or_default();
        let wins = crate::kernel::codec::winner(&after.entries, after.enabled, &header, None)
            .is_some_and(|w| w.name == rule.name);
        r.verify = Some(Verification {
            read_back: ok,
            read_back_detail: detail.clone(),
            wins,
            probe: None,
            chrooted: false,
        });
        let earlier = matches!(r.plan.action, Action::Keep { owned: true })
            && r.plan
                .line
                .as_deref()
                .is_some_and(|l| cache.verified_earlier(l, &rule.interpreter));
        if !ok {
            failed(r, detail.unwrap_or_default());
        } else if req.verify && wins && earlier {
            if let Some(v) = r.verify.as_mut() {
                v.probe = Some(crate::probe::run::ProbeOutcome::PassedEarlier);
                v.chrooted = true;
            }
        } else if req.verify && wins {
            to_probe.push(r.plan.arch.clone());
        } else if !wins {
            r.plan.warnings.push(
                "another entry wins for this ISA, so the probe was not run through this handler"
                    .into(),
            );
        }
    }
    if req.verify && !to_probe.is_empty() {
        to_probe.sort();
        to_probe.dedup();
        let (outcomes, chrooted, took) = verify::run_probes(&to_probe, &ctx.probe_dir);
        probe_seconds = Some(took.as_secs_f64());
        if !chrooted {
            warnings.push(
                "probes ran without chroot (CAP_SYS_CHROOT missing), so the F flag was not proven"
                    .into(),
            );
        }
        for r in results.iter_mut() {
            let Some((_, outcome)) = outcomes.iter().find(|(a, _)| *a == r.plan.arch) else {
                continue;
            };
            let Some(v) = r.verify.as_mut() else { continue };
            if let Action::SkipForeign { provider, .. } = &r.plan.action {
                v.probe = Some(outcome.clone());
                v.chrooted = chrooted;
                if !outcome.passed() {
                    let why = format!("{provider} is not binfmtd's entry and was left alone, but it does not work: {}; `--force` replaces it", outcome.describe());
                    failed(r, why);
                }
                continue;
            }
            if r.result != "ok" || !v.wins {
                continue;
            }
            v.probe = Some(outcome.clone());
            v.chrooted = chrooted;
            if !outcome.passed() {
                let why = format!("registered, but the probe failed: {}", outcome.describe());
                failed(r, why);
            } else if let (true, Some(line), Some(i)) =
                (chrooted, &r.plan.line, &r.plan.interpreter)
            {
                if let Some(id) = crate::persist::cache::FileId::of(&i.path) {
                    cache.verified.insert(line.clone(), id);
                }
            }
        }
    }
    if cache != cache_before {
        cache.save(ctx.state.dir());
    }
    // An explicitly requested platform that another tool's entry serves counts as done only
    // when that entry was proven to work; otherwise the request was not met.
    if matches!(selection, Selection::Handlers(_)) {
        for r in results.iter_mut().filter(|r| r.result == "skipped") {
            if let Action::SkipForeign { provider, wins } = &r.plan.action {
                let proven = r
                    .verify
                    .as_ref()
                    .and_then(|v| v.probe.as_ref())
                    .is_some_and(|p| p.passed());
                if !proven {
                    let why = if *wins {
                        format!("{provider} (not binfmtd's) serves this platform and was not verified (--no-verify); binfmtd registered nothing; `--force` replaces it")
                    } else {
                        format!("{provider} (not binfmtd's) blocks this platform's entry but does not win for it either; binfmtd registered nothing; `--force` replaces it")
                    };
                    failed(r, why);
                }
            }
        }
    }
    let ok = results.iter().all(|r| r.result != "failed");
    Ok(report(
        ctx,
        req,
        mounted_now,
        host.native,
        results,
        warnings,
        probe_seconds,
        ok,
    ))
}

#[allow(clippy::too_many_arguments)]
fn report(
    ctx: &Context,
    req: &InstallRequest,
    mounted_now: bool,
    native: Vec<String>,
    handlers: Vec<HandlerResult>,
    warnings: Vec<String>,
    probe_seconds: Option<f64>,
    ok: bool,
) -> InstallReport {
    InstallReport {
        schema: "binfmtd.install/v1",
        binfmt_misc: ctx.kernel.path().display().to_string(),
        dry_run: req.dry_run,
        mounted_now,
        native,
        handlers,
        warnings,
        probe_seconds,
        ok,
    }
}

/// Result for one entry of uninstall/enable/disable.
#[derive(Debug, Clone, Serialize)]
pub struct EntryResult {
    #[serde(flatten)]
    pub decision: EntryDecision,
    pub result: &'static str,
    pub error: Option<String>,
}

/// What uninstall/enable/disable report.
#[derive(Debug, Clone, Serialize)]
pub struct EntriesReport {
    pub schema: &'static str,
    pub operation: &'static str,
    pub binfmt_misc: String,
    pub dry_run: bool,
    pub entries: Vec<EntryResult>,
    pub warnings: Vec<String>,
    pub ok: bool,
}

/// Uninstalls, enables or disables entries; never touches foreign entries without force.
pub fn change_entries(
    ctx: &Context,
    list: &str,
    op: EntryOp,
    force: bool,
    dry_run: bool,
) -> Result<EntriesReport, OpsError> {
    let selection = ctx.catalog.select(list)?;
    let _lock = if dry_run {
        None
    } else {
        Some(ctx.state.lock()?)
    };
    let loaded = if dry_run {
        ctx.state.peek()
    } else {
        ctx.state.load()
    };
    let mut warnings: Vec<String> = loaded.warning.into_iter().collect();
    let mut state = loaded.state;
    let snap = ctx.kernel.snapshot()?;
    if !snap.mounted {
        return Err(crate::kernel::KernelError::NotMounted(snap.path).into());
    }
    let decisions = plan::plan_entries(&ctx.catalog, &selection, &snap.entries, &state, op, force);
    if op == EntryOp::Remove && !dry_run {
        // Entries binfmtd registered that are gone from the kernel (a flush, a reboot) may
        // still have binfmt.d files that would bring them back: remove those too.
        let absent: Vec<(String, Option<std::path::PathBuf>)> = state
            .entries
            .iter()
            .filter(|(name, _)| !snap.entries.iter().any(|e| &e.name == *name))
            .filter(|(name, o)| match &selection {
                Selection::All => true,
                Selection::Handlers(h) => h.contains(name) || h.contains(&o.handler),
            })
            .map(|(name, o)| (name.clone(), o.persisted.clone()))
            .collect();
        for (name, persisted) in absent {
            let file =
                persisted.unwrap_or_else(|| binfmt_d::file_for(&ctx.paths.binfmt_d_dir, &name));
            match std::fs::remove_file(&file) {
                Ok(()) => warnings.push(format!(
                    "{name} was binfmtd's but is not registered now; removed its binfmt.d file {}",
                    file.display()
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warnings.push(format!(
                    "cannot remove {}: {e}; delete it, or {name} comes back at the next boot",
                    file.display()
                )),
            }
        }
    }
    let mut out = Vec::new();
    let explicit = matches!(selection, Selection::Handlers(_));
    for d in decisions {
        let action = match d.plan {
            EntryPlan::Remove => Some(EntryAction::Remove),
            EntryPlan::Enable => Some(EntryAction::Enable),
            EntryPlan::Disable => Some(EntryAction::Disable),
            _ => None,
        };
        let mut res = EntryResult {
            result: match d.plan {
                EntryPlan::SkipForeign if explicit => "failed",
                EntryPlan::SkipForeign | EntryPlan::Absent | EntryPlan::Unchanged => "skipped",
                _ => "ok",
            },
            error: matches!(d.plan, EntryPlan::SkipForeign).then(|| {
                format!(
                    "entry {} was not created by binfmtd; pass --force to change it anyway",
                    d.name
                )
            }),
            decision: d,
        };
        if let (Some(a), false) = (action, dry_run) {
            if let Err(e) = ctx.kernel.act(&res.decision.name, a) {
                res.result = "failed";
                res.error = Some(e.to_string());
            } else if a == EntryAction::Remove {
                state.entries.remove(&res.decision.name);
            }
        }
        if op == EntryOp::Remove && !dry_run && res.result == "ok" {
            if let Err(e) = binfmt_d::remove(&ctx.paths.binfmt_d_dir, &res.decision.name) {
                res.result = "failed";
                res.error = Some(format!(
                    "entry removed, but cannot delete its binfmt.d file in {}: {e}",
                    ctx.paths.binfmt_d_dir.display()
                ));
            }
        }
        out.push(res);
    }
    if op == EntryOp::Remove && !dry_run {
        // Forget owned names that no longer exist in the kernel at all.
        let after = ctx.kernel.snapshot()?;
        state
            .entries
            .retain(|n, _| after.entries.iter().any(|e| &e.name == n));
        ctx.state.save(&state)?;
    }
    let ok = out.iter().all(|r| r.result != "failed");
    Ok(EntriesReport {
        schema: "binfmtd.entries/v1",
        operation: match op {
            EntryOp::Remove => "uninstall",
            EntryOp::Enable => "enable",
            EntryOp::Disable => "disable",
        },
        binfmt_misc: ctx.kernel.path().display().to_string(),
        dry_run,
        entries: out,
        warnings,
        ok,
    })
}
