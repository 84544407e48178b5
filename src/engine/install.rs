//! The install transaction: plan, record intent, apply, verify, persist; undone on failure.

use super::outcome::{describe_install, Item, Outcome, Status};
use super::request::{InstallRequest, Origin};
use super::{desired, steps};
use crate::catalog::{discover, Selection};
use crate::kernel::Snapshot;
use crate::ops::verify::Verification;
use crate::ops::{Context, OpsError};
use crate::persist::cache::Cache;
use crate::persist::{binfmt_d, State};
use crate::plan::{self, Action, HandlerPlan};
use serde::Serialize;
use std::collections::BTreeMap;

/// Result for one handler.
#[derive(Debug, Clone, Serialize)]
pub struct HandlerResult {
    #[serde(flatten)]
    pub plan: HandlerPlan,
    /// `ok`, `skipped` or `failed`.
    pub result: Status,
    /// One word for what happened (`installed`, `unchanged`, `conflict`, `failed`, ...).
    pub outcome: Outcome,
    pub error: Option<String>,
    pub verify: Option<Verification>,
    pub persisted: Option<String>,
}

impl HandlerResult {
    fn new(plan: HandlerPlan) -> Self {
        let (result, error) = match &plan.action {
            Action::Fail { reason } => (Status::Failed, Some(reason.clone())),
            a if a.yields_entry() => (Status::Ok, None),
            _ => (Status::Skipped, None),
        };
        HandlerResult {
            outcome: Outcome::of_install(result, &plan.action),
            plan,
            result,
            error,
            verify: None,
            persisted: None,
        }
    }

    /// Marks the handler failed with a reason.
    pub fn fail(&mut self, why: String) {
        self.result = Status::Failed;
        self.outcome = Outcome::Failed;
        self.error = Some(why);
    }

    /// True when this handler registered or replaced an entry in this run.
    pub fn registers(&self) -> bool {
        matches!(self.plan.action, Action::Register | Action::Replace { .. })
    }

    /// The transport-neutral item (D-Bus report, daemon output).
    pub fn item(&self) -> Item {
        Item {
            platform: self.plan.platform.clone(),
            handler: self.plan.handler.clone(),
            outcome: self.outcome,
            message: describe_install(&self.plan.action, self.error.as_deref()),
        }
    }
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

impl InstallReport {
    pub fn items(&self) -> Vec<Item> {
        self.handlers.iter().map(HandlerResult::item).collect()
    }
}

/// An install under way: what every step reads and changes.
pub(super) struct Txn<'a> {
    pub ctx: &'a Context,
    pub req: &'a InstallRequest,
    pub state: State,
    pub snap: Snapshot,
    pub results: Vec<HandlerResult>,
    pub warnings: Vec<String>,
    pub cache: Cache,
    pub probe_seconds: Option<f64>,
    pub intent: Intent,
}

/// This change's record of the admin's intent (`desired.toml`): what it was before, and the
/// new record being written (started before the host is probed, committed after verifying).
pub(super) struct Intent {
    pub before: crate::persist::desired::Recorded,
    /// The record this change writes (`before` when it changes nothing).
    record: crate::persist::desired::Recorded,
    pending: Option<crate::persist::state::PendingDesired>,
}

impl Intent {
    /// Reads the record and, for a change asked for (not a plan, not the daemon's own
    /// reconciling) that changes it, starts writing the new one.
    fn start(ctx: &Context, req: &InstallRequest) -> Result<Intent, OpsError> {
        if req.dry_run {
            return Ok(Intent {
                before: Default::default(),
                record: Default::default(),
                pending: None,
            });
        }
        let before = ctx.state.load_desired()?;
        let mut record = before.clone();
        if req.origin == Origin::Request {
            desired::record_install(&mut record, &ctx.catalog, req);
        }
        let pending = (record != before)
            .then(|| ctx.state.stage_desired(&record))
            .transpose()?;
        Ok(Intent {
            before,
            record,
            pending,
        })
    }
}

/// Plans and (unless dry-run) applies an install: intent is recorded first (ownership,
/// journal, desired state), then each handler is registered, verified by its probe and
/// persisted; a handler whose registration, probe or persisting fails is undone.
pub fn install(ctx: &Context, req: &InstallRequest) -> Result<InstallReport, OpsError> {
    // Mounting first: without the right to mount, that error says what is missing.
    let mounted_now = !req.dry_run && ctx.kernel.ensure_mounted()?;
    let _lock = (!req.dry_run).then(|| ctx.state.lock()).transpose()?;
    let mut report = install_locked(ctx, req)?;
    report.mounted_now |= mounted_now;
    if mounted_now {
        report.warnings.insert(0, format!(
            "binfmt_misc was not mounted at {}; binfmtd mounted it (a new instance: entries registered before an unmount are gone since Linux 6.7)",
            report.binfmt_misc
        ));
    }
    Ok(report)
}

/// [`install`] for a caller that holds the state lock already (or plans only).
pub(super) fn install_locked(
    ctx: &Context,
    req: &InstallRequest,
) -> Result<InstallReport, OpsError> {
    let mut cache = ctx.cache();
    ctx.probe_native_first(&mut cache);
    // The admin's intent is written before the rest of the host facts are gathered and the
    // interpreters found; its fsync runs meanwhile.
    let (intent, host, discovered) =
        host_and_interpreters(ctx, req, &mut cache, || Intent::start(ctx, req))?;
    let interpreters = discovered.found;
    // Versions are only shown: read on their own thread while the change proceeds.
    let unversioned = discovered.unversioned;
    let versions = std::thread::spawn(move || discover::versions(&unversioned));
    let mut warnings = Vec::new();
    if let Some(e) = &host.probe_error {
        warnings.push(format!(
            "native ISAs were guessed from QEMU's family table: {e}"
        ));
    }
    let mounted_now = !req.dry_run && ctx.kernel.ensure_mounted()?;
    let loaded = if req.dry_run {
        ctx.state.peek()
    } else {
        ctx.state.load()
    };
    warnings.extend(loaded.warning);
    let mut state = loaded.state;
    if !req.dry_run {
        let recovered = steps::recover(ctx.kernel.as_ref(), &mut state);
        if !recovered.is_empty() {
            // At once: a run that then changes nothing would leave the undone journal on
            // disk, and every later run would undo it again.
            ctx.state.save(&state)?;
        }
        warnings.extend(recovered);
    }
    let snap = ctx.kernel.snapshot()?;
    if !req.dry_run && !snap.mounted {
        return Err(crate::kernel::KernelError::NotMounted(snap.path).into());
    }
    let lost = crate::ops::status::missing(&state, &snap);
    if snap.mounted && !snap.enabled {
        warnings.push("binfmt_misc is globally disabled (status is 0): no handler runs until `echo 1 > status`".into());
    }
    let results = plan_results(ctx, req, &host, &snap, &state, interpreters, &mut cache);
    warnings.extend(lost_warning(&lost, &results));
    let mut txn = Txn {
        ctx,
        req,
        state,
        snap,
        results,
        warnings,
        cache,
        probe_seconds: None,
        intent,
    };
    if !req.dry_run {
        txn.run()?;
    }
    txn.add_versions(versions.join().unwrap_or_default());
    if !req.dry_run {
        txn.cache.save(ctx.state.dir());
    }
    let ok = txn.results.iter().all(|r| r.result != Status::Failed);
    Ok(InstallReport {
        schema: "binfmtd.install/v1",
        binfmt_misc: ctx.kernel.path().display().to_string(),
        dry_run: req.dry_run,
        mounted_now,
        native: host.native,
        handlers: txn.results,
        warnings: txn.warnings,
        probe_seconds: txn.probe_seconds,
        ok,
    })
}

/// What to say about binfmtd's entries the kernel no longer has (removed by someone else,
/// or freed by an unmount of binfmt_misc): which this run registers again, and which stay
/// missing (pure).
fn lost_warning(
    lost: &[crate::ops::status::MissingEntry],
    results: &[HandlerResult],
) -> Vec<String> {
    if lost.is_empty() {
        return Vec::new();
    }
    let again = |name: &str| {
        results.iter().any(|r| {
            r.result == Status::Ok && r.plan.rule.as_ref().is_some_and(|rule| rule.name == name)
        })
    };
    let (back, gone): (Vec<&str>, Vec<&str>) =
        lost.iter().map(|m| m.name.as_str()).partition(|n| again(n));
    let mut out = format!(
        "binfmtd's entries {} were not in the kernel (removed by someone else, or lost with an unmount of binfmt_misc)",
        lost.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    if !back.is_empty() {
        out.push_str(&format!("; this run registers {} again", back.len()));
    }
    if !gone.is_empty() {
        out.push_str(&format!(
            "; {} stay missing (`binfmtd status` lists them, `binfmtd install` brings them back)",
            gone.join(", ")
        ));
    }
    vec![out]
}

/// Discovers interpreters and plans every candidate handler (no kernel writes).
type Found = BTreeMap<String, Result<discover::Interpreter, discover::Missing>>;

/// Starts finding the interpreters of every handler the request could use on another thread
/// (for either answer about Rosetta; native ones are found too and then skipped), then runs
/// `first` and probes the host on this one: neither waits for the other. Nothing is probed
/// when `first` fails.
fn host_and_interpreters<T>(
    ctx: &Context,
    req: &InstallRequest,
    cache: &mut Cache,
    first: impl FnOnce() -> Result<T, OpsError>,
) -> Result<(T, crate::host::HostReport, discover::Discovered), OpsError> {
    let policy = &req.options.policy;
    let preserve =
        policy.preserve_argv0.unwrap_or(false) || policy.flags.is_some_and(|f| f.preserve_argv0);
    let mut names = plan::candidates(&ctx.catalog, &req.selection, true, policy);
    for n in plan::candidates(&ctx.catalog, &req.selection, false, policy) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let known = cache.clone();
    std::thread::scope(|s| {
        let found = s.spawn(|| {
            let wanted: Vec<&crate::catalog::Handler> =
                names.iter().filter_map(|n| ctx.catalog.get(n)).collect();
            let search = discover::search_path();
            discover::discover_many(&wanted, &search, preserve, Some(&known))
        });
        let done = first().map(|t| (t, ctx.host_with(cache, true)));
        let found = found.join().unwrap_or_default();
        done.map(|(t, host)| (t, host, found))
    })
}

/// Plans every candidate handler (no kernel writes) and remembers the interpreters found.
fn plan_results(
    ctx: &Context,
    req: &InstallRequest,
    host: &crate::host::HostReport,
    snap: &Snapshot,
    state: &State,
    interpreters: Found,
    cache: &mut Cache,
) -> Vec<HandlerResult> {
    for i in interpreters.values().flatten() {
        if let Some(id) = crate::persist::cache::FileId::of(&i.path) {
            cache.interpreters.insert(i.path.clone(), (id, i.clone()));
        }
    }
    let plans = plan::plan_install(&plan::PlanInput {
        catalog: &ctx.catalog,
        selection: &req.selection,
        native: &host.native,
        entries: &snap.entries,
        state,
        interpreters: &interpreters,
        rosetta_healthy: host.rosetta.healthy,
        policy: &req.options.policy,
    });
    block_unreadable(plans, &snap.unreadable)
        .into_iter()
        .map(HandlerResult::new)
        .collect()
}

/// An entry file the kernel lists but that cannot be parsed still holds its name:
/// registering under it would fail with EEXIST, so it counts as someone else's (pure).
pub fn block_unreadable(
    plans: Vec<HandlerPlan>,
    unreadable: &[(String, String)],
) -> Vec<HandlerPlan> {
    plans
        .into_iter()
        .map(|mut p| {
            let blocked = unreadable.iter().find(|(n, _)| *n == p.handler);
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
        .collect()
}

impl Txn<'_> {
    /// Record intent → apply → verify → persist → settle, in that order. A state file
    /// that cannot be written (read-only or full state directory) ends the run with nothing
    /// of it left in the kernel: before the first registration, nothing was done; after
    /// it, every registration of this run is undone.
    fn run(&mut self) -> Result<(), OpsError> {
        let on_disk = match self.journal() {
            Ok(saved) => saved,
            Err(e) => return Err(self.abort(e, false)),
        };
        // No save between the steps: until the final one, the journal saved above says
        // what to undo, and undoing is idempotent.
        self.apply_all();
        if let Err(e) = self.verify() {
            return Err(self.abort(e, true));
        }
        // Nothing durable (binfmt.d files, the committed journal) before the intent is.
        let committed = self.intent.pending.take().map(|p| p.commit()).transpose();
        let syncing = match committed {
            Ok(syncing) => syncing,
            Err(e) => return Err(self.abort(e.into(), true)),
        };
        self.persist();
        self.settle_foreign();
        let journal = self.state.pending.clone();
        self.finish();
        let saved = if self.req.options.persist {
            self.ctx.state.save_synced(&self.state)
        } else if self.state != on_disk {
            self.ctx.state.save(&self.state)
        } else {
            Ok(())
        };
        let synced = saved
            .map_err(OpsError::from)
            .and_then(|()| Ok(syncing.map(|s| s.wait()).transpose()?));
        if let Err(e) = synced {
            self.state.pending = journal;
            return Err(self.abort(e, true));
        }
        if self.req.origin == Origin::Request {
            // What is on disk now: this change's record (the state lock is held).
            let mut record = self.intent.record.clone();
            desired::settle_install(
                &mut record,
                &self.intent.before,
                &self.ctx.catalog,
                self.req,
                &self.results,
            );
            if record != self.intent.record {
                self.ctx.state.save_desired(&record)?;
            }
        }
        Ok(())
    }

    /// The interpreter versions read meanwhile, into the results and the fact cache.
    fn add_versions(&mut self, versions: BTreeMap<std::path::PathBuf, Option<String>>) {
        for r in &mut self.results {
            if let Some(i) = r.plan.interpreter.as_mut() {
                if let Some(v) = versions.get(&i.path) {
                    i.version.clone_from(v);
                }
            }
        }
        for (path, (_, i)) in self.cache.interpreters.iter_mut() {
            if let Some(v) = versions.get(path) {
                i.version.clone_from(v);
            }
        }
    }

    /// Records intent (ownership and journal) in the state file; returns what is on disk.
    fn journal(&mut self) -> Result<State, OpsError> {
        let loaded = self.state.clone();
        for r in self.results.iter().filter(|r| r.result == Status::Ok) {
            steps::intent(&mut self.state, &r.plan, &self.snap);
        }
        if self.state != loaded {
            self.ctx.state.save(&self.state)?;
        }
        Ok(self.state.clone())
    }

    /// Ends a run that cannot finish: undoes every registration it journaled (when it
    /// `applied` them), deletes the binfmt.d files it wrote, and puts the desired state back
    /// (best effort: the journal on disk, if any, still tells the next run what to undo).
    fn abort(&mut self, err: OpsError, applied: bool) -> OpsError {
        let kernel = self.ctx.kernel.as_ref();
        let mut undone = Vec::new();
        let mut problems = Vec::new();
        let journal = if applied {
            self.state.pending.clone()
        } else {
            Vec::new()
        };
        for p in journal {
            match steps::undo(kernel, &mut self.state, &p) {
                Ok(()) => undone.push(p.name.clone()),
                Err(e) => problems.push(format!("undoing {} failed: {e}", p.name)),
            }
        }
        for r in self.results.iter_mut().filter(|r| r.registers()) {
            if let Some(file) = r.persisted.take() {
                if let Err(e) = std::fs::remove_file(&file) {
                    problems.push(format!("cannot delete {file}: {e}"));
                }
            }
        }
        if self.req.origin == Origin::Request
            && self.ctx.state.load_desired().ok().as_ref() != Some(&self.intent.before)
            && self
                .ctx
                .state
                .put_back_desired(&self.intent.before)
                .is_err()
        {
            problems.push("the desired state (desired.toml) could not be put back either".into());
        }
        // After the desired state: putting that back may free the room this needs.
        if applied {
            let _ = self.ctx.state.save(&self.state);
        }
        let mut detail = if undone.is_empty() {
            "nothing was registered".to_string()
        } else {
            format!("the change was undone: {} removed again", undone.join(", "))
        };
        for p in problems {
            detail.push_str("; ");
            detail.push_str(&p);
        }
        OpsError::RolledBack {
            source: Box::new(err),
            detail,
        }
    }

    fn apply_all(&mut self) {
        let kernel = self.ctx.kernel.as_ref();
        for i in 0..self.results.len() {
            if self.results[i].result != Status::Ok {
                continue;
            }
            if let Err(e) = steps::apply(kernel, &self.results[i].plan, &self.snap) {
                self.fail_undone(i, e, false);
            }
        }
    }

    /// Fails handler `i` and, if it registered in this run, undoes its registration.
    pub(super) fn undo(&mut self, i: usize, why: String) {
        self.fail_undone(i, why, true);
    }

    /// Fails handler `i` and undoes what its journal recorded; `applied` says whether the
    /// kernel change was made (so the report says it was undone).
    fn fail_undone(&mut self, i: usize, why: String, applied: bool) {
        let name = self.results[i].plan.rule.as_ref().map(|r| r.name.clone());
        let pending = name.and_then(|n| self.state.pending.iter().find(|p| p.name == n).cloned());
        let mut why = why;
        if let Some(p) = pending {
            match steps::undo(self.ctx.kernel.as_ref(), &mut self.state, &p) {
                Ok(()) if applied && self.results[i].registers() => {
                    why.push_str("; the registration was undone")
                }
                Ok(()) => {}
                // A replacement that failed already said what putting back did.
                Err(e) if !applied && why.contains(e.split(": ").last().unwrap_or(&e)) => {}
                Err(e) => why.push_str(&format!("; undoing it failed: {e}")),
            }
        } else if matches!(self.results[i].plan.action, Action::Enable) {
            if let Some(rule) = &self.results[i].plan.rule {
                let disable = crate::kernel::EntryAction::Disable;
                if self.ctx.kernel.act(&rule.name, disable).is_ok() {
                    why.push_str("; the entry was disabled again");
                }
            }
        }
        self.results[i].fail(why);
    }

    /// Writes binfmt.d files for verified handlers, when asked to persist.
    fn persist(&mut self) {
        if !self.req.options.persist {
            return;
        }
        let dir = self.ctx.paths.binfmt_d_dir.clone();
        for i in 0..self.results.len() {
            let r = &self.results[i];
            let (Status::Ok, Some(rule)) = (r.result, r.plan.rule.clone()) else {
                continue;
            };
            if matches!(r.plan.action, Action::Keep { owned: false }) {
                continue;
            }
            match binfmt_d::write(&dir, &rule) {
                Ok(path) => {
                    self.results[i].persisted = Some(path.display().to_string());
                    if let Some(o) = self.state.entries.get_mut(&rule.name) {
                        o.persisted = Some(path);
                    }
                }
                Err(e) => self.undo(
                    i,
                    format!(
                        "verified, but cannot write its binfmt.d file in {}: {e}; fix the directory (--binfmt-d-dir) or install without --persist",
                        dir.display()
                    ),
                ),
            }
        }
    }

    /// Commits the journal of every handler that ended well.
    fn finish(&mut self) {
        for r in &self.results {
            if let (Status::Ok, Some(rule)) = (r.result, &r.plan.rule) {
                steps::commit(&mut self.state, &rule.name);
            }
        }
    }
}

/// The selection asked for these handlers by name (not `all`).
pub fn explicit(selection: &Selection) -> bool {
    matches!(selection, Selection::Handlers(_))
}
