//! The steps of a change, each taking its world through seams: journal intent, apply one
//! handler, undo it, and recover a change that a crash interrupted.

use crate::kernel::{codec, Binfmt, EntryAction, Snapshot};
use crate::model::{Entry, Rule};
use crate::persist::{OwnedEntry, Pending, State};
use crate::plan::{Action, HandlerPlan};

/// The register line that brings back exactly this entry (enabled or not: the kernel
/// registers it enabled, and [`undo`] disables it again when it was disabled).
pub fn line_of(entry: &Entry) -> Option<String> {
    codec::encode(&entry.to_rule()).ok()
}

/// Journals one registration about to be made (pure): binfmtd's ownership of the new line,
/// and what to put back if the change does not finish.
pub fn intent(state: &mut State, plan: &HandlerPlan, snap: &Snapshot) {
    let (Some(rule), Some(line)) = (&plan.rule, &plan.line) else {
        return;
    };
    let removed: &[String] = match &plan.action {
        Action::Register => &[],
        Action::Replace { remove } => remove,
        _ => return,
    };
    let before = state.entries.get(&rule.name).cloned();
    let restore = removed
        .iter()
        .filter_map(|n| snap.entries.iter().find(|e| &e.name == n))
        .filter_map(line_of)
        .collect();
    state.pending.retain(|p| p.name != rule.name);
    state.pending.push(Pending {
        name: rule.name.clone(),
        line: line.clone(),
        before: before.clone(),
        restore,
    });
    state.entries.insert(
        rule.name.clone(),
        OwnedEntry {
            handler: plan.handler.clone(),
            platform: plan.platform.clone(),
            line: line.clone(),
            persisted: before.as_ref().and_then(|b| b.persisted.clone()),
            previous: before.map(|b| b.line),
        },
    );
}

/// Makes one planned change in the kernel. A replacement whose new line the kernel refuses
/// puts back what it removed, so a refused change leaves the kernel as it was.
pub fn apply(kernel: &dyn Binfmt, plan: &HandlerPlan, snap: &Snapshot) -> Result<(), String> {
    let Some(rule) = &plan.rule else {
        return Ok(());
    };
    match &plan.action {
        Action::Register => kernel.register(rule).map_err(|e| e.to_string()),
        Action::Replace { remove } => replace(kernel, rule, remove, snap),
        Action::Enable => kernel
            .act(&rule.name, EntryAction::Enable)
            .map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

fn replace(
    kernel: &dyn Binfmt,
    rule: &Rule,
    remove: &[String],
    snap: &Snapshot,
) -> Result<(), String> {
    let mut removed: Vec<&Entry> = Vec::new();
    let mut failure = None;
    for name in remove {
        match kernel.act(name, EntryAction::Remove) {
            Ok(()) => removed.extend(snap.entries.iter().find(|e| &e.name == name)),
            Err(e) => {
                failure = Some(format!("cannot remove entry {name} to replace it: {e}"));
                break;
            }
        }
    }
    let failure = match failure {
        Some(f) => f,
        None => match kernel.register(rule) {
            Ok(()) => return Ok(()),
            Err(e) => e.to_string(),
        },
    };
    let lines: Vec<String> = removed.iter().filter_map(|e| line_of(e)).collect();
    let put_back = restore(kernel, &lines, &removed_disabled(&removed));
    Err(match put_back {
        Ok(()) if removed.is_empty() => failure,
        Ok(()) => format!(
            "{failure}; the removed entries ({}) were registered again exactly as before",
            names(&removed)
        ),
        Err(e) => format!(
            "{failure}; putting back {} also failed: {e}",
            names(&removed)
        ),
    })
}

fn names(entries: &[&Entry]) -> String {
    entries
        .iter()
        .map(|e| e.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn removed_disabled(entries: &[&Entry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| !e.enabled)
        .map(|e| e.name.clone())
        .collect()
}

/// Registers lines again (skipping names that exist), then disables the named ones.
fn restore(kernel: &dyn Binfmt, lines: &[String], disabled: &[String]) -> Result<(), String> {
    let snap = kernel.snapshot().ok();
    if lines.is_empty() {
        return Ok(());
    }
    if snap.as_ref().is_some_and(|s| !s.mounted) {
        return Err(format!(
            "binfmt_misc at {} is not mounted (an unmount frees every entry since Linux 6.7), so {} cannot be registered again",
            kernel.path().display(),
            lines.join(", ")
        ));
    }
    let present: Vec<String> = snap
        .map(|s| s.entries.into_iter().map(|e| e.name).collect())
        .unwrap_or_default();
    let mut errors = Vec::new();
    for line in lines {
        let rule = match codec::decode(line) {
            Ok(rule) => rule,
            Err(e) => {
                errors.push(format!("line {line:?} cannot be decoded: {e}"));
                continue;
            }
        };
        if present.contains(&rule.name) {
            continue;
        }
        if let Err(e) = kernel.register(&rule) {
            errors.push(format!("{line:?}: {e}"));
        } else if disabled.contains(&rule.name) {
            let _ = kernel.act(&rule.name, EntryAction::Disable);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Undoes one journaled registration: removes the new entry if it holds the journaled
/// line, registers what it replaced again, and gives the name back its earlier record.
pub fn undo(kernel: &dyn Binfmt, state: &mut State, pending: &Pending) -> Result<(), String> {
    let mut problems = Vec::new();
    if let (Ok(snap), Ok(rule)) = (kernel.snapshot(), codec::decode(&pending.line)) {
        if snap
            .entries
            .iter()
            .any(|e| e.name == pending.name && rule.same_as(e))
        {
            if let Err(e) = kernel.act(&pending.name, EntryAction::Remove) {
                problems.push(format!("cannot remove entry {}: {e}", pending.name));
            }
        }
    }
    if let Err(e) = restore(kernel, &pending.restore, &[]) {
        problems.push(format!("cannot register the replaced entries again: {e}"));
    }
    let back = kernel.snapshot().ok().and_then(|s| {
        let entry = s.entries.into_iter().find(|e| e.name == pending.name)?;
        pending.before.clone().filter(|b| b.matches(&entry))
    });
    match back {
        Some(mut b) => {
            b.previous = None;
            state.entries.insert(pending.name.clone(), b);
        }
        None => {
            state.entries.remove(&pending.name);
        }
    }
    state.pending.retain(|p| p.name != pending.name);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Finishes a registration that was verified: the journal entry goes, ownership stays.
pub fn commit(state: &mut State, name: &str) {
    state.pending.retain(|p| p.name != name);
    if let Some(o) = state.entries.get_mut(name) {
        o.previous = None;
    }
}

/// Undoes every change an earlier run journaled but never finished (it was killed), so the
/// kernel and the state are back where that run started. Returns what was done, for the
/// report's warnings.
pub fn recover(kernel: &dyn Binfmt, state: &mut State) -> Vec<String> {
    let pending = state.pending.clone();
    pending
        .iter()
        .map(|p| match undo(kernel, state, p) {
            Ok(()) => format!(
                "an earlier change of {} did not finish (was binfmtd killed?); it was undone",
                p.name
            ),
            Err(e) => format!(
                "an earlier change of {} did not finish, and undoing it failed: {e}; check `binfmtd status`",
                p.name
            ),
        })
        .collect()
}

#[cfg(test)]
#[path = "steps_tests.rs"]
mod tests;
