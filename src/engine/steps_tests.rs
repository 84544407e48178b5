//! A change killed at each step converges: the next run undoes the unfinished part (the
//! kernel and the ownership record are back where that run started), then proceeds.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::catalog::Catalog;
use crate::kernel::MemoryBinfmt;
use crate::model::Flags;
use crate::plan::HandlerPlan;

fn entry(name: &str, interp: &str, flags: &str) -> Entry {
    let catalog = Catalog::load(None).unwrap();
    let h = catalog.get("qemu-aarch64").unwrap();
    let mut rule = h.rule(std::path::Path::new(interp), Flags::parse(flags).unwrap());
    rule.name = name.into();
    Entry::registered(&rule)
}

fn plan(action: Action) -> HandlerPlan {
    let rule = entry("qemu-aarch64", "/usr/bin/binfmtd-qemu", "F").to_rule();
    HandlerPlan {
        handler: "qemu-aarch64".into(),
        arch: "aarch64".into(),
        platform: "linux/arm64".into(),
        action,
        line: codec::encode(&rule).ok(),
        rule: Some(rule),
        interpreter: None,
        warnings: vec![],
    }
}

/// How far the killed run got.
#[derive(Debug, Clone, Copy)]
enum Killed {
    Intent,
    RemovedForeign,
    Registered,
}

#[test]
fn a_killed_change_is_undone_by_the_next_run() {
    let foreign = entry("qemu-aarch64", "/usr/bin/qemu-aarch64-static", "OPF");
    let replace = Action::Replace {
        remove: vec!["qemu-aarch64".into()],
    };
    let cases = [
        (vec![], Action::Register, Killed::Intent),
        (vec![], Action::Register, Killed::Registered),
        (vec![foreign.clone()], replace.clone(), Killed::Intent),
        (
            vec![foreign.clone()],
            replace.clone(),
            Killed::RemovedForeign,
        ),
        (vec![foreign.clone()], replace, Killed::Registered),
    ];
    for (before, action, killed) in cases {
        let kernel = MemoryBinfmt::new(before.clone());
        let snap = kernel.snapshot().unwrap();
        let p = plan(action);
        let mut state = State::default();
        intent(&mut state, &p, &snap);
        // The killed run: its journal was saved, then it got this far.
        match killed {
            Killed::Intent => {}
            Killed::RemovedForeign => {
                kernel.act("qemu-aarch64", EntryAction::Remove).unwrap();
            }
            Killed::Registered => {
                if !before.is_empty() {
                    kernel.act("qemu-aarch64", EntryAction::Remove).unwrap();
                }
                kernel.register(p.rule.as_ref().unwrap()).unwrap();
            }
        }
        // The next run starts by recovering.
        let warnings = recover(&kernel, &mut state);
        assert_eq!(warnings.len(), 1, "{killed:?}: {warnings:?}");
        assert!(state.pending.is_empty(), "{killed:?}");
        assert!(state.entries.is_empty(), "{killed:?}: nothing is binfmtd's");
        let after = kernel.snapshot().unwrap().entries;
        assert_eq!(
            after, before,
            "{killed:?}: the kernel is as before the killed run"
        );
        // A second recovery has nothing to do.
        assert!(recover(&kernel, &mut state).is_empty());
    }
}

#[test]
fn a_killed_replacement_of_binfmtds_own_entry_keeps_it_binfmtds() {
    let old = entry("qemu-aarch64", "/usr/bin/old-qemu", "F");
    let kernel = MemoryBinfmt::new(vec![old.clone()]);
    let mut state = State::default();
    state.entries.insert(
        "qemu-aarch64".into(),
        OwnedEntry {
            handler: "qemu-aarch64".into(),
            platform: "linux/arm64".into(),
            line: line_of(&old).unwrap(),
            persisted: None,
            previous: None,
        },
    );
    let p = plan(Action::Replace {
        remove: vec!["qemu-aarch64".into()],
    });
    intent(&mut state, &p, &kernel.snapshot().unwrap());
    kernel.act("qemu-aarch64", EntryAction::Remove).unwrap();
    recover(&kernel, &mut state);
    assert_eq!(kernel.snapshot().unwrap().entries, vec![old.clone()]);
    assert!(state.owns(&old), "the old entry is binfmtd's again");
}

#[test]
fn commit_keeps_ownership_and_drops_the_journal() {
    let kernel = MemoryBinfmt::new(vec![]);
    let mut state = State::default();
    let p = plan(Action::Register);
    intent(&mut state, &p, &kernel.snapshot().unwrap());
    apply(&kernel, &p, &kernel.snapshot().unwrap()).unwrap();
    commit(&mut state, "qemu-aarch64");
    assert!(state.pending.is_empty());
    assert!(state.owns(&kernel.snapshot().unwrap().entries[0]));
    assert!(recover(&kernel, &mut state).is_empty());
}
