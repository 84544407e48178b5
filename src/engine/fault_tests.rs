//! Faults inside the transaction's windows, over the in-memory kernel: binfmt_misc unmounted
//! between planning and registering (every entry freed, as since Linux 6.7) or right after
//! registering, another tool registering the same name meanwhile (`EEXIST`), and a journal
//! left by a killed run whose recovery must reach the disk even when nothing else changes.

#![allow(clippy::unwrap_used)]

use super::install;
use super::install_tests::{aarch64, foreign, names, owned, wanted, world, World};
use super::Outcome;
use crate::kernel::{codec, Binfmt, EntryAction, KernelError, MemoryBinfmt, Snapshot};
use crate::model::{Entry, Rule};
use crate::persist::Pending;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What happens at the first register write.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// The instance is unmounted just before it: every entry is freed.
    UnmountBefore,
    /// The write succeeds, then the instance is unmounted.
    UnmountAfter,
    /// Another tool registers the same name just before it.
    OtherToolFirst,
}

struct Faulty {
    inner: Arc<MemoryBinfmt>,
    fault: Fault,
    fired: AtomicBool,
    unmounted: AtomicBool,
}

impl Faulty {
    fn unmount(&self) {
        self.inner.state.lock().unwrap().1.clear();
        self.unmounted.store(true, Ordering::SeqCst);
    }
    fn gone(&self) -> Result<(), KernelError> {
        match self.unmounted.load(Ordering::SeqCst) {
            true => Err(KernelError::NotMounted(self.path())),
            false => Ok(()),
        }
    }
}

/// Another tool's entry named qemu-aarch64 (an extension entry, so nothing of binfmtd's).
fn other_tools() -> Entry {
    Entry::registered(&codec::decode(":qemu-aarch64:E::race::/bin/true:").unwrap())
}

impl Binfmt for Faulty {
    fn path(&self) -> PathBuf {
        self.inner.path()
    }
    fn snapshot(&self) -> Result<Snapshot, KernelError> {
        let mut snap = self.inner.snapshot()?;
        if self.unmounted.load(Ordering::SeqCst) {
            snap.mounted = false;
            snap.entries.clear();
        }
        Ok(snap)
    }
    fn register(&self, rule: &Rule) -> Result<(), KernelError> {
        self.gone()?;
        let first = !self.fired.swap(true, Ordering::SeqCst);
        match self.fault {
            Fault::UnmountBefore if first => {
                self.unmount();
                return self.gone();
            }
            Fault::OtherToolFirst if first => {
                self.inner.register(&other_tools().to_rule())?;
            }
            _ => {}
        }
        self.inner.register(rule)?;
        if first && self.fault == Fault::UnmountAfter {
            self.unmount();
        }
        Ok(())
    }
    fn act(&self, name: &str, action: EntryAction) -> Result<(), KernelError> {
        self.gone()?;
        self.inner.act(name, action)
    }
    fn set_enabled(&self, enabled: bool) -> Result<(), KernelError> {
        self.gone()?;
        self.inner.set_enabled(enabled)
    }
    fn ensure_mounted(&self) -> Result<bool, KernelError> {
        Ok(false)
    }
}

fn faulty(entries: Vec<Entry>, fault: Fault) -> World {
    let mut w = world(entries, false, None);
    w.ctx.kernel = Box::new(Faulty {
        inner: Arc::clone(&w.kernel),
        fault,
        fired: AtomicBool::new(false),
        unmounted: AtomicBool::new(false),
    });
    w
}

#[test]
fn unmounted_in_a_window_of_the_transaction_fails_clearly_and_records_nothing() {
    // (what, kernel before, fault, force)
    let cases = [
        (
            "unmounted before the register write",
            vec![],
            Fault::UnmountBefore,
            false,
        ),
        (
            "unmounted after the register write",
            vec![],
            Fault::UnmountAfter,
            false,
        ),
        (
            "unmounted after removing the entry to replace",
            vec![foreign()],
            Fault::UnmountBefore,
            true,
        ),
    ];
    for (what, before, fault, force) in cases {
        let w = faulty(before, fault);
        let r = install(&w.ctx, &aarch64(force)).unwrap();
        let h = &r.handlers[0];
        assert_eq!(h.outcome, Outcome::Failed, "{what}");
        let error = h.error.clone().unwrap_or_default();
        assert!(
            error.contains("binfmt_misc is not mounted")
                || error.contains("was unmounted during the change"),
            "{what}: {error}"
        );
        assert_eq!(
            error.matches("cannot be registered again").count(),
            usize::from(force),
            "{what}: the lost entry is named once: {error}"
        );
        assert!(names(&w).is_empty(), "{what}: every entry was freed");
        assert!(
            owned(&w).is_empty(),
            "{what}: nothing recorded as binfmtd's"
        );
        assert!(
            wanted(&w).is_empty(),
            "{what}: a failed handler is not wanted"
        );
        assert!(
            w.ctx.state.load().state.pending.is_empty(),
            "{what}: journal"
        );
    }
}

#[test]
fn another_tool_registering_the_same_name_meanwhile_keeps_its_entry() {
    for force in [false, true] {
        let w = faulty(vec![], Fault::OtherToolFirst);
        let r = install(&w.ctx, &aarch64(force)).unwrap();
        let h = &r.handlers[0];
        assert_eq!(h.outcome, Outcome::Failed);
        assert!(
            h.error.as_deref().unwrap().contains("EEXIST"),
            "{:?}",
            h.error
        );
        let kernel = w.kernel.snapshot().unwrap().entries;
        assert_eq!(kernel, vec![other_tools()], "force={force}: left as it was");
        assert!(owned(&w).is_empty());
        assert!(w.ctx.state.load().state.pending.is_empty());
    }
}

/// A forced replacement killed between removing the other tool's entry and registering
/// binfmtd's: the next install (without force) puts the entry back, refuses to replace it,
/// and the journal it undid is gone from the state on disk too (it was left there before,
/// so every later run registered the other tool's entry again).
#[test]
fn a_recovered_journal_is_saved_even_when_the_run_changes_nothing_else() {
    let w = world(vec![], false, None);
    let line = ":qemu-aarch64:M::\\x7fELF::/usr/bin/binfmtd-q:F".to_string();
    let other = ":qemu-aarch64:E::fx::/bin/true:".to_string();
    let mut state = w.ctx.state.load().state;
    state.pending.push(Pending {
        name: "qemu-aarch64".into(),
        line,
        before: None,
        restore: vec![other.clone()],
    });
    w.ctx.state.save(&state).unwrap();
    let r = install(&w.ctx, &aarch64(false)).unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("it was undone")),
        "{r:?}"
    );
    let h = &r.handlers[0];
    assert_eq!(h.outcome, Outcome::Failed);
    assert!(
        h.error.as_deref().unwrap().contains("--force"),
        "{:?}",
        h.error
    );
    assert_eq!(names(&w), vec![("qemu-aarch64".to_string(), String::new())]);
    assert!(
        w.ctx.state.load().state.pending.is_empty(),
        "the undone journal is saved"
    );
}
