//! How changes update the desired state (pure): intent before, the truth after.

use super::install::HandlerResult;
use super::outcome::{Outcome, Status};
use super::request::{keys, InstallRequest};
use crate::catalog::{Catalog, Selection};
use crate::persist::desired::{canonical_keys, effective, Config, Recorded, ALL};
use crate::plan::EntryOp;

/// Records an install request as wanted, before anything is changed.
pub fn record_install(record: &mut Recorded, catalog: &Catalog, req: &InstallRequest) {
    for key in keys(&req.selection) {
        let spec = req.options.spec_for(catalog.get(&key));
        record.install(&key, &spec);
    }
}

/// After an install: a handler that failed is wanted only as it was before. `all` stays
/// recorded only when everything succeeded; otherwise the handlers that did install are
/// recorded one by one.
pub fn settle_install(
    record: &mut Recorded,
    before: &Recorded,
    catalog: &Catalog,
    req: &InstallRequest,
    results: &[HandlerResult],
) {
    let failed = |r: &&HandlerResult| r.result == Status::Failed;
    match &req.selection {
        Selection::Handlers(_) => {
            for r in results.iter().filter(failed) {
                record.forget_install(&r.plan.handler, before);
            }
        }
        Selection::All if results.iter().any(|r| r.result == Status::Failed) => {
            record.forget_install(ALL, before);
            for r in results.iter().filter(|r| r.result == Status::Ok) {
                let spec = req.options.spec_for(catalog.get(&r.plan.handler));
                record.install(&r.plan.handler, &spec);
            }
        }
        Selection::All => {}
    }
}

/// The keys an entry change applies to: each handler, or for `all` every platform wanted
/// now plus `all` itself.
pub fn entry_keys(
    selection: &Selection,
    config: &Config,
    record: &Recorded,
    catalog: &Catalog,
) -> Vec<String> {
    let canon = |w: &str| catalog.canonical(w);
    let current: Vec<String> = effective(config, record, &canon)
        .into_iter()
        .map(|w| w.platform)
        .collect();
    canonical_keys(&keys(selection), &canon, &current)
}

/// Records an uninstall/enable/disable of `key` (pure).
pub fn mark(record: &mut Recorded, key: &str, op: EntryOp) {
    match op {
        EntryOp::Remove => record.uninstall(key),
        EntryOp::Enable => record.set_enabled(key, true),
        EntryOp::Disable => record.set_enabled(key, false),
    }
}

/// Whether an entry change's outcome may be recorded: a refused or failed change (an
/// explicitly named entry of another tool is refused) records nothing.
pub fn recordable(outcome: Outcome) -> bool {
    outcome != Outcome::Failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::request::{InstallOptions, Origin};
    use crate::persist::desired::InstallSpec;
    use crate::plan::{Action, HandlerPlan};

    fn result(handler: &str, status: Status) -> HandlerResult {
        let plan = HandlerPlan {
            handler: handler.into(),
            arch: "x".into(),
            platform: "linux/x".into(),
            action: Action::Register,
            rule: None,
            line: None,
            interpreter: None,
            warnings: vec![],
        };
        HandlerResult {
            plan,
            result: status,
            outcome: Outcome::of_install(status, &Action::Register),
            error: None,
            verify: None,
            persisted: None,
        }
    }

    fn req(selection: Selection) -> InstallRequest {
        InstallRequest {
            selection,
            options: InstallOptions::default(),
            dry_run: false,
            origin: Origin::Request,
        }
    }

    #[test]
    fn settle_table() {
        let catalog = Catalog::load(None).expect("embedded catalog");
        let one = |s: &str| Selection::Handlers(vec![s.to_string()]);
        // (selection, results, keys installed after)
        let cases: Vec<(Selection, Vec<HandlerResult>, Vec<&str>)> = vec![
            (
                one("qemu-aarch64"),
                vec![result("qemu-aarch64", Status::Ok)],
                vec!["qemu-aarch64"],
            ),
            (
                one("qemu-aarch64"),
                vec![result("qemu-aarch64", Status::Failed)],
                vec![],
            ),
            (
                Selection::All,
                vec![result("qemu-aarch64", Status::Ok)],
                vec!["all"],
            ),
            (
                Selection::All,
                vec![
                    result("qemu-aarch64", Status::Ok),
                    result("qemu-s390x", Status::Failed),
                ],
                vec!["qemu-aarch64"],
            ),
        ];
        for (selection, results, want) in cases {
            let before = Recorded::default();
            let mut record = before.clone();
            let r = req(selection);
            record_install(&mut record, &catalog, &r);
            settle_install(&mut record, &before, &catalog, &r, &results);
            let got: Vec<&str> = record.installed.keys().map(String::as_str).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn install_clears_disabled_and_refusals_record_nothing() {
        let mut record = Recorded::default();
        mark(&mut record, "qemu-aarch64", EntryOp::Disable);
        assert!(record.disabled.contains("qemu-aarch64"));
        record.install("qemu-aarch64", &InstallSpec::default());
        assert!(record.disabled.is_empty());
        assert!(!recordable(Outcome::Failed));
        assert!(recordable(Outcome::Absent));
        assert!(recordable(Outcome::Disabled));
    }
}
