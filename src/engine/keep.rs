//! Keeping the desired state: what the daemon does at start, on Reconcile and on drift.

use super::entries::change_entries_locked;
use super::install::install_locked;
use super::outcome::{Item, Outcome};
use super::request::{select, EntriesRequest, InstallOptions, InstallRequest, Origin};
use crate::ops::{Context, OpsError};
use crate::persist::desired::{effective, Config, Wanted};
use crate::plan::EntryOp;
use std::collections::BTreeSet;

/// Why the desired state cannot be kept at all.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error(transparent)]
    Desired(#[from] crate::persist::desired::DesiredError),
    #[error(transparent)]
    Ops(#[from] OpsError),
}

/// What one round of keeping did.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    pub items: Vec<Item>,
    /// Desired-state keys that could not be kept (their attempt failed, or was skipped).
    pub failed: BTreeSet<String>,
}

/// Brings every wanted platform to its desired state, through the same transaction as a
/// request (verified, never forced), under one hold of the state lock. A platform that
/// cannot be kept is reported failed; the others go on. Platforms in `skip` (they failed
/// last time, and nothing but the kernel's entries changed since) are not tried again: a
/// failed attempt registers and removes an entry, and those writes alone must not start
/// the next attempt.
pub fn reconcile(ctx: &Context, skip: &BTreeSet<String>) -> Result<Kept, KeepError> {
    let config = Config::load(&ctx.paths.config_dir)?;
    let _lock = ctx.state.lock().map_err(OpsError::from)?;
    let record = ctx.state.load_desired()?;
    let canon = |w: &str| ctx.catalog.canonical(w);
    let mut kept = Kept::default();
    for wanted in effective(&config, &record, &canon) {
        if skip.contains(&wanted.platform) {
            kept.failed.insert(wanted.platform.clone());
            continue;
        }
        match keep_one(ctx, &wanted) {
            Ok(done) => {
                if done.iter().any(|i| i.outcome == Outcome::Failed) {
                    kept.failed.insert(wanted.platform.clone());
                }
                kept.items.extend(done);
            }
            Err(message) => {
                kept.failed.insert(wanted.platform.clone());
                kept.items.push(Item {
                    platform: wanted.platform.clone(),
                    handler: wanted.target.clone(),
                    outcome: Outcome::Failed,
                    message,
                });
            }
        }
    }
    Ok(kept)
}

/// One wanted platform, with as few writes as possible. A platform kept disabled is only
/// disabled when its entry exists: installing it first would enable it (a write, hence an
/// inotify event, hence another round) before disabling it again.
fn keep_one(ctx: &Context, wanted: &Wanted) -> Result<Vec<Item>, String> {
    let selection = select(&ctx.catalog, &[wanted.target.as_str()]).map_err(|e| e.to_string())?;
    let options = InstallOptions::from_spec(&wanted.spec).map_err(|e| {
        format!(
            "flags {:?} of {}: {e}; fix the config or reinstall it with valid flags",
            wanted.spec.flags, wanted.platform
        )
    })?;
    let install = InstallRequest {
        selection: selection.clone(),
        options,
        dry_run: false,
        origin: Origin::Keep,
    };
    if wanted.enabled {
        let r = install_locked(ctx, &install).map_err(|e| e.to_string())?;
        return Ok(r.items());
    }
    let disable = EntriesRequest {
        selection,
        op: EntryOp::Disable,
        force: false,
        dry_run: false,
    };
    let r = change_entries_locked(ctx, &disable, false).map_err(|e| e.to_string())?;
    if !r.entries.is_empty() && r.entries.iter().all(|e| e.outcome != Outcome::Absent) {
        return Ok(r.items(EntryOp::Disable));
    }
    let mut items = install_locked(ctx, &install)
        .map_err(|e| e.to_string())?
        .items();
    let r = change_entries_locked(ctx, &disable, false).map_err(|e| e.to_string())?;
    items.extend(r.items(EntryOp::Disable));
    Ok(items)
}
