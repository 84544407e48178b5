//! Uninstall, enable and disable of existing entries; never another tool's without force,
//! and a refused change records nothing.

use super::desired::{entry_keys, mark, recordable};
use super::outcome::{describe_entry, Item, Outcome, Status};
use super::request::EntriesRequest;
use crate::catalog::Selection;
use crate::kernel::EntryAction;
use crate::ops::{Context, OpsError};
use crate::persist::desired::{Config, ALL};
use crate::persist::{binfmt_d, State};
use crate::plan::{self, EntryDecision, EntryOp, EntryPlan};
use serde::Serialize;

/// Result for one entry of uninstall/enable/disable.
#[derive(Debug, Clone, Serialize)]
pub struct EntryResult {
    #[serde(flatten)]
    pub decision: EntryDecision,
    pub result: Status,
    pub outcome: Outcome,
    pub error: Option<String>,
}

impl EntryResult {
    fn fail(&mut self, why: String) {
        self.result = Status::Failed;
        self.outcome = Outcome::Failed;
        self.error = Some(why);
    }
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

impl EntriesReport {
    pub fn items(&self, op: EntryOp) -> Vec<Item> {
        self.entries
            .iter()
            .map(|r| Item {
                platform: String::new(),
                handler: r
                    .decision
                    .handler
                    .clone()
                    .unwrap_or_else(|| r.decision.name.clone()),
                outcome: r.outcome,
                message: describe_entry(&r.decision.plan, op, &r.decision.name, r.error.as_deref()),
            })
            .collect()
    }
}

/// The command word of an entry operation.
pub fn op_name(op: EntryOp) -> &'static str {
    match op {
        EntryOp::Remove => "uninstall",
        EntryOp::Enable => "enable",
        EntryOp::Disable => "disable",
    }
}

/// Uninstalls, enables or disables entries, recording the change in the desired state.
pub fn change_entries(ctx: &Context, req: &EntriesRequest) -> Result<EntriesReport, OpsError> {
    let _lock = (!req.dry_run).then(|| ctx.state.lock()).transpose()?;
    change_entries_locked(ctx, req, true)
}

/// [`change_entries`] under a held lock; `record` is false when the daemon keeps state.
pub(super) fn change_entries_locked(
    ctx: &Context,
    req: &EntriesRequest,
    record: bool,
) -> Result<EntriesReport, OpsError> {
    let loaded = if req.dry_run {
        ctx.state.peek()
    } else {
        ctx.state.load()
    };
    let mut warnings: Vec<String> = loaded.warning.into_iter().collect();
    let mut state = loaded.state;
    if !req.dry_run {
        warnings.extend(super::steps::recover(ctx.kernel.as_ref(), &mut state));
    }
    let snap = ctx.kernel.snapshot()?;
    if !snap.mounted {
        return Err(crate::kernel::KernelError::NotMounted(snap.path).into());
    }
    let decisions = plan::plan_entries(
        &ctx.catalog,
        &req.selection,
        &snap.entries,
        &state,
        req.op,
        req.force,
    );
    let mut out: Vec<EntryResult> = decisions
        .into_iter()
        .map(|d| first_result(d, &req.selection))
        .collect();
    if req.dry_run {
        return Ok(report(ctx, req, out, warnings));
    }
    let desired = record.then(|| begin_record(ctx, req)).transpose()?;
    if req.op == EntryOp::Remove {
        warnings.extend(forget_flushed(ctx, &state, &snap, &req.selection));
    }
    for r in out.iter_mut() {
        act(ctx, req.op, r, &mut state);
    }
    if req.op == EntryOp::Remove {
        let after = ctx.kernel.snapshot()?;
        state
            .entries
            .retain(|n, _| after.entries.iter().any(|e| &e.name == n));
    }
    ctx.state.save(&state)?;
    if let Some((before, keys)) = desired {
        settle_record(ctx, req, &before, &keys, &out)?;
    }
    Ok(report(ctx, req, out, warnings))
}

fn first_result(d: EntryDecision, selection: &Selection) -> EntryResult {
    let explicit = matches!(selection, Selection::Handlers(_));
    let result = match d.plan {
        EntryPlan::SkipForeign if explicit => Status::Failed,
        EntryPlan::SkipForeign | EntryPlan::Absent | EntryPlan::Unchanged => Status::Skipped,
        _ => Status::Ok,
    };
    let error = matches!(d.plan, EntryPlan::SkipForeign).then(|| {
        format!(
            "entry {} was not created by binfmtd; pass --force to change it anyway",
            d.name
        )
    });
    EntryResult {
        outcome: Outcome::of_entry(result, &d.plan),
        result,
        error,
        decision: d,
    }
}

/// Makes one decided change, and removes the binfmt.d file of a removed entry.
fn act(ctx: &Context, op: EntryOp, r: &mut EntryResult, state: &mut State) {
    let action = match r.decision.plan {
        EntryPlan::Remove => EntryAction::Remove,
        EntryPlan::Enable => EntryAction::Enable,
        EntryPlan::Disable => EntryAction::Disable,
        _ => return,
    };
    if let Err(e) = ctx.kernel.act(&r.decision.name, action) {
        r.fail(e.to_string());
        return;
    }
    if op != EntryOp::Remove {
        return;
    }
    state.entries.remove(&r.decision.name);
    if let Err(e) = binfmt_d::remove(&ctx.paths.binfmt_d_dir, &r.decision.name) {
        r.fail(format!(
            "entry removed, but cannot delete its binfmt.d file in {}: {e}; delete it, or the entry comes back at the next boot",
            ctx.paths.binfmt_d_dir.display()
        ));
    }
}

/// Entries binfmtd registered that are gone from the kernel (a flush, a reboot) may still
/// have binfmt.d files that would bring them back: remove those too.
fn forget_flushed(
    ctx: &Context,
    state: &State,
    snap: &crate::kernel::Snapshot,
    selection: &Selection,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let absent = state
        .entries
        .iter()
        .filter(|(name, _)| !snap.entries.iter().any(|e| &e.name == *name))
        .filter(|(name, o)| match selection {
            Selection::All => true,
            Selection::Handlers(h) => h.contains(name) || h.contains(&o.handler),
        });
    for (name, o) in absent {
        let file = o
            .persisted
            .clone()
            .unwrap_or_else(|| binfmt_d::file_for(&ctx.paths.binfmt_d_dir, name));
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
    warnings
}

type Begun = (crate::persist::desired::Recorded, Vec<String>);

/// Records the change as wanted before it is made, so a daemon's drift repair that the
/// change itself triggers already sees it.
fn begin_record(ctx: &Context, req: &EntriesRequest) -> Result<Begun, OpsError> {
    let before = ctx.state.load_desired()?;
    let config = Config::load(&ctx.paths.config_dir).unwrap_or_default();
    let keys = entry_keys(&req.selection, &config, &before, &ctx.catalog);
    let mut record = before.clone();
    for k in &keys {
        mark(&mut record, k, req.op);
    }
    if record != before {
        ctx.state.save_desired(&record)?;
    }
    Ok((before, keys))
}

/// After the change: keys whose change was refused or failed go back to how they were.
fn settle_record(
    ctx: &Context,
    req: &EntriesRequest,
    before: &crate::persist::desired::Recorded,
    keys: &[String],
    out: &[EntryResult],
) -> Result<(), OpsError> {
    let refused = |key: &str| {
        out.iter().any(|r| {
            !recordable(r.outcome)
                && (key == ALL
                    || r.decision.name == key
                    || r.decision.handler.as_deref() == Some(key))
        })
    };
    let mut record = before.clone();
    for k in keys.iter().filter(|k| !refused(k)) {
        mark(&mut record, k, req.op);
    }
    if record != ctx.state.load_desired()? {
        ctx.state.save_desired(&record)?;
    }
    Ok(())
}

fn report(
    ctx: &Context,
    req: &EntriesRequest,
    entries: Vec<EntryResult>,
    warnings: Vec<String>,
) -> EntriesReport {
    EntriesReport {
        schema: "binfmtd.entries/v1",
        operation: op_name(req.op),
        binfmt_misc: ctx.kernel.path().display().to_string(),
        dry_run: req.dry_run,
        ok: entries.iter().all(|r| r.result != Status::Failed),
        entries,
        warnings,
    }
}
