//! Table tests of the change transaction without root: an in-memory kernel that can refuse,
//! scripted probes, in-memory state, a catalog whose interpreter is a temporary file.

#![allow(clippy::unwrap_used)]

use super::request::{EntriesRequest, InstallOptions, InstallRequest, Origin};
use super::{change_entries, install, steps, Outcome, Status};
use crate::catalog::{Catalog, Selection};
use crate::config::Paths;
use crate::kernel::{Binfmt, EntryAction, KernelError, MemoryBinfmt, Snapshot};
use crate::model::{Entry, Rule};
use crate::ops::verify::{Probed, Prober};
use crate::ops::Context;
use crate::persist::StateStore;
use crate::plan::EntryOp;
use crate::probe::run::ProbeOutcome;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The in-memory kernel, optionally refusing registers of one interpreter (EACCES, as for
/// an interpreter on a noexec mount); other tools' lines are still accepted.
pub(super) struct Kernel {
    pub(super) inner: Arc<MemoryBinfmt>,
    pub(super) refuse: Option<PathBuf>,
}

impl Binfmt for Kernel {
    fn path(&self) -> PathBuf {
        self.inner.path()
    }
    fn snapshot(&self) -> Result<Snapshot, KernelError> {
        self.inner.snapshot()
    }
    fn register(&self, rule: &Rule) -> Result<(), KernelError> {
        if self.refuse.as_ref() == Some(&rule.interpreter) {
            return Err(KernelError::Refused {
                path: self.path(),
                line: String::new(),
                errno: nix::errno::Errno::EACCES,
                hint: "noexec",
            });
        }
        self.inner.register(rule)
    }
    fn act(&self, name: &str, action: EntryAction) -> Result<(), KernelError> {
        self.inner.act(name, action)
    }
    fn set_enabled(&self, enabled: bool) -> Result<(), KernelError> {
        self.inner.set_enabled(enabled)
    }
    fn ensure_mounted(&self) -> Result<bool, KernelError> {
        Ok(false)
    }
}

/// Probes that pass, or fail with the given outcome.
struct Script(Option<ProbeOutcome>);

impl Prober for Script {
    fn probe(&self, arches: &[String]) -> Probed {
        let outcome = self.0.clone().unwrap_or(ProbeOutcome::Passed);
        Probed {
            outcomes: arches
                .iter()
                .map(|a| (a.clone(), outcome.clone()))
                .collect(),
            chrooted: true,
            took: std::time::Duration::ZERO,
        }
    }
}

pub(super) struct World {
    _dir: tempfile::TempDir,
    pub(super) ctx: Context,
    pub(super) kernel: Arc<MemoryBinfmt>,
}

/// A foreign entry for aarch64 as another tool registers it (Debian's name and flags).
pub(super) fn foreign() -> Entry {
    let catalog = Catalog::load(None).unwrap();
    let h = catalog.get("qemu-aarch64").unwrap();
    let mut rule = h.rule(
        std::path::Path::new("/usr/bin/qemu-aarch64-static"),
        crate::model::Flags::parse("OPF").unwrap(),
    );
    rule.name = "qemu-aarch64".into();
    Entry::registered(&rule)
}

pub(super) fn world(entries: Vec<Entry>, refuse: bool, probe: Option<ProbeOutcome>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let interp = dir.path().join("qemu-aarch64-static");
    std::fs::copy("/bin/true", &interp).unwrap();
    let dropins = dir.path().join("config/interpreters.d");
    std::fs::create_dir_all(&dropins).unwrap();
    let embedded = include_str!("../../interpreters/qemu-aarch64.toml");
    let text: String = embedded
        .lines()
        .map(|l| {
            if l.starts_with("interpreters") {
                format!("interpreters = [{:?}]", interp.display().to_string())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dropins.join("qemu-aarch64.toml"), text).unwrap();
    let paths = Paths {
        config_dir: dir.path().join("config"),
        state_dir: dir.path().join("state"),
        binfmt_d_dir: dir.path().join("binfmt.d"),
        ..Paths::default()
    };
    let catalog = Catalog::load(Some(&paths.interpreters_d())).unwrap();
    let kernel = Arc::new(MemoryBinfmt::new(entries));
    let host = crate::host::detect(
        &crate::host::facts::HostFacts {
            machine: "x86_64".into(),
            binfmt_supported: true,
            binfmt_mounted: true,
            binfmt_enabled: Some(true),
            native_probes: Some(vec![("x86_64".into(), true)]),
            ..Default::default()
        },
        &catalog,
    );
    let ctx = Context {
        kernel: Box::new(Kernel {
            inner: Arc::clone(&kernel),
            refuse: refuse.then(|| interp.clone()),
        }),
        state: StateStore::Memory(Mutex::default()),
        catalog,
        probe_dir: dir.path().to_path_buf(),
        prober: Box::new(Script(probe)),
        binfmt_d_dirs: vec![],
        binfmts_admin_dir: dir.path().join("binfmts"),
        fixed_host: Some(host),
        paths,
    };
    World {
        _dir: dir,
        ctx,
        kernel,
    }
}

pub(super) fn aarch64(force: bool) -> InstallRequest {
    let mut options = InstallOptions::default();
    options.policy.force = force;
    options.policy.allow_dynamic = true;
    InstallRequest {
        selection: Selection::Handlers(vec!["qemu-aarch64".into()]),
        options,
        dry_run: false,
        origin: Origin::Request,
    }
}

pub(super) fn names(w: &World) -> Vec<(String, String)> {
    w.kernel
        .snapshot()
        .unwrap()
        .entries
        .into_iter()
        .map(|e| (e.name, e.flags.to_string()))
        .collect()
}

pub(super) fn owned(w: &World) -> Vec<String> {
    w.ctx.state.load().state.entries.keys().cloned().collect()
}

pub(super) fn wanted(w: &World) -> Vec<String> {
    w.ctx
        .state
        .load_desired()
        .unwrap()
        .installed
        .keys()
        .cloned()
        .collect()
}

#[test]
fn install_transaction_table() {
    let bad = Some(ProbeOutcome::WrongExit { code: 255 });
    // (what, kernel before, refuse, probe, force, outcome, kernel after, owned, wanted)
    type Case = (
        &'static str,
        Vec<Entry>,
        bool,
        Option<ProbeOutcome>,
        bool,
        Outcome,
        Vec<(&'static str, &'static str)>,
        Vec<&'static str>,
        Vec<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "fresh, probe passes",
            vec![],
            false,
            None,
            false,
            Outcome::Installed,
            vec![("qemu-aarch64", "F")],
            vec!["qemu-aarch64"],
            vec!["qemu-aarch64"],
        ),
        (
            "fresh, probe fails: undone, not wanted",
            vec![],
            false,
            bad.clone(),
            false,
            Outcome::Failed,
            vec![],
            vec![],
            vec![],
        ),
        (
            "kernel refuses",
            vec![],
            true,
            None,
            false,
            Outcome::Failed,
            vec![],
            vec![],
            vec![],
        ),
        (
            "foreign without force: left alone",
            vec![foreign()],
            false,
            None,
            false,
            Outcome::Conflict,
            vec![("qemu-aarch64", "POF")],
            vec![],
            vec!["qemu-aarch64"],
        ),
        (
            "force, kernel refuses: foreign put back",
            vec![foreign()],
            true,
            None,
            true,
            Outcome::Failed,
            vec![("qemu-aarch64", "POF")],
            vec![],
            vec![],
        ),
        (
            "force, probe fails: foreign put back",
            vec![foreign()],
            false,
            bad,
            true,
            Outcome::Failed,
            vec![("qemu-aarch64", "POF")],
            vec![],
            vec![],
        ),
        (
            "force, probe passes: replaced",
            vec![foreign()],
            false,
            None,
            true,
            Outcome::Replaced,
            vec![("qemu-aarch64", "F")],
            vec!["qemu-aarch64"],
            vec!["qemu-aarch64"],
        ),
    ];
    for (what, before, refuse, probe, force, outcome, after, own, want) in cases {
        let w = world(before, refuse, probe);
        let r = install(&w.ctx, &aarch64(force)).unwrap();
        let h = &r.handlers[0];
        assert_eq!(h.outcome, outcome, "{what}: {:?}", h.error);
        let after: Vec<(String, String)> = after
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(names(&w), after, "{what}");
        assert_eq!(owned(&w), own, "{what}");
        assert_eq!(wanted(&w), want, "{what}");
        assert!(
            w.ctx.state.load().state.pending.is_empty(),
            "{what}: journal left"
        );
        if h.result == Status::Failed {
            assert!(h.error.is_some(), "{what}: a failure says why");
        }
    }
}

#[test]
fn default_flags_carry_no_credentials() {
    let w = world(vec![], false, None);
    let r = install(&w.ctx, &aarch64(false)).unwrap();
    let line = r.handlers[0].plan.line.clone().unwrap();
    assert!(!line.rsplit(':').next().unwrap().contains('C'), "{line}");
}

#[test]
fn entry_changes_record_only_what_was_done() {
    // A refused disable of another tool's entry records nothing.
    let w = world(vec![foreign()], false, None);
    let req = |op, force| EntriesRequest {
        selection: Selection::Handlers(vec!["qemu-aarch64".into()]),
        op,
        force,
        dry_run: false,
    };
    let r = change_entries(&w.ctx, &req(EntryOp::Disable, false)).unwrap();
    assert_eq!(r.entries[0].outcome, Outcome::Failed);
    assert!(w.ctx.state.load_desired().unwrap().disabled.is_empty());
    // Replaced, then disabled by binfmtd: recorded; a later install clears it.
    install(&w.ctx, &aarch64(true)).unwrap();
    let r = change_entries(&w.ctx, &req(EntryOp::Disable, false)).unwrap();
    assert_eq!(r.entries[0].outcome, Outcome::Disabled);
    assert!(w
        .ctx
        .state
        .load_desired()
        .unwrap()
        .disabled
        .contains("qemu-aarch64"));
    let r = install(&w.ctx, &aarch64(false)).unwrap();
    assert_eq!(r.handlers[0].outcome, Outcome::Enabled);
    assert!(w.ctx.state.load_desired().unwrap().disabled.is_empty());
    // Uninstall removes it and records that it is not wanted.
    let r = change_entries(&w.ctx, &req(EntryOp::Remove, false)).unwrap();
    assert_eq!(r.entries[0].outcome, Outcome::Removed);
    assert!(names(&w).is_empty());
    assert!(wanted(&w).is_empty());
}

#[test]
fn an_entry_changing_underneath_fails_cleanly() {
    // Planned against a snapshot that still shows the foreign entry, which another tool
    // removed meanwhile: the replacement fails and the kernel is left as it is.
    let w = world(vec![foreign()], false, None);
    let snap = w.kernel.snapshot().unwrap();
    w.kernel.act("qemu-aarch64", EntryAction::Remove).unwrap();
    let plan = crate::plan::HandlerPlan {
        handler: "qemu-aarch64".into(),
        arch: "aarch64".into(),
        platform: "linux/arm64".into(),
        action: crate::plan::Action::Replace {
            remove: vec!["qemu-aarch64".into()],
        },
        rule: Some(foreign().to_rule()),
        line: None,
        interpreter: None,
        warnings: vec![],
    };
    let err = steps::apply(w.ctx.kernel.as_ref(), &plan, &snap).unwrap_err();
    assert!(err.contains("cannot remove entry qemu-aarch64"), "{err}");
    assert!(names(&w).is_empty());
}

#[test]
fn intent_that_cannot_be_read_refuses_the_change_untouched() {
    // desired.toml is a directory: the intent cannot even be read, nothing is touched.
    let mut w = world(vec![foreign()], false, None);
    let state = w.ctx.paths.state_dir.clone();
    std::fs::create_dir_all(state.join("desired.toml/blocked")).unwrap();
    w.ctx.state = StateStore::Dir(state.clone());
    let before = names(&w);
    let err = install(&w.ctx, &aarch64(true)).expect_err("the intent cannot be read");
    assert!(matches!(err, crate::ops::OpsError::Desired(_)), "{err}");
    assert!(err.to_string().contains("desired.toml"), "{err}");
    assert_eq!(names(&w), before);
    assert!(state.join("desired.toml/blocked").exists());
}

#[test]
fn lost_entries_are_named_with_what_this_run_does_about_them() {
    let w = world(vec![], false, None);
    install(&w.ctx, &aarch64(false)).unwrap();
    // Gone from the kernel behind binfmtd's back (as after an unmount).
    w.kernel.act("qemu-aarch64", EntryAction::Remove).unwrap();
    let again = install(&w.ctx, &aarch64(false)).unwrap();
    let said = again.warnings.join("\n");
    assert!(
        said.contains("qemu-aarch64 were not in the kernel"),
        "{said}"
    );
    assert!(said.contains("this run registers 1 again"), "{said}");
    assert!(!said.contains("stay missing"), "{said}");
    w.kernel.act("qemu-aarch64", EntryAction::Remove).unwrap();
    let mut other = aarch64(false);
    other.selection = Selection::Handlers(vec!["qemu-riscv64".into()]);
    let said = install(&w.ctx, &other).unwrap().warnings.join("\n");
    assert!(said.contains("qemu-aarch64 stay missing"), "{said}");
    assert!(!said.contains("again"), "{said}");
}
