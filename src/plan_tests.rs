//! Table-driven tests of the install and entry planners.

use super::*;
use crate::catalog::discover::{Interpreter, Missing};
use crate::persist::OwnedEntry;
use std::path::PathBuf;

fn catalog() -> Catalog {
    Catalog::embedded().unwrap()
}

fn interp(path: &str, static_linked: bool) -> Interpreter {
    Interpreter {
        path: PathBuf::from(path),
        static_linked,
        version: Some("qemu 7.2".into()),
    }
}

fn entry_for(c: &Catalog, handler: &str, name: &str, interp: &str, flags: &str) -> Entry {
    let h = c.get(handler).unwrap();
    Entry {
        name: name.into(),
        enabled: true,
        interpreter: interp.into(),
        flags: Flags::parse(flags).unwrap().effective(),
        matcher: h.matcher().unwrap(),
    }
}

fn owned(state: &mut State, e: &Entry) {
    state.entries.insert(
        e.name.clone(),
        OwnedEntry {
            handler: e.name.clone(),
            platform: String::new(),
            line: codec::encode(&e.to_rule()).unwrap(),
            persisted: None,
            previous: None,
        },
    );
}

struct Case {
    what: &'static str,
    select: &'static str,
    entries: Vec<Entry>,
    own: Vec<&'static str>,
    policy: InstallPolicy,
    rosetta: bool,
    dynamic: bool,
    missing: bool,
    want: Vec<(&'static str, Action)>,
}

fn run(case: Case) {
    let c = catalog();
    let sel = c.select(case.select).unwrap();
    let mut state = State::default();
    for e in &case.entries {
        if case.own.contains(&e.name.as_str()) {
            owned(&mut state, e);
        }
    }
    let mut interps = BTreeMap::new();
    for h in c.handlers.values() {
        let r = if case.missing {
            Err(Missing {
                handler: h.name.clone(),
                tried: vec![],
                hint: "install it".into(),
            })
        } else {
            Ok(interp(
                &format!("/usr/bin/{}-static", h.name),
                !case.dynamic,
            ))
        };
        interps.insert(h.name.clone(), r);
    }
    let native = vec!["x86_64".to_string(), "i386".to_string()];
    let plans = plan_install(&PlanInput {
        catalog: &c,
        selection: &sel,
        native: &native,
        entries: &case.entries,
        state: &state,
        interpreters: &interps,
        rosetta_healthy: case.rosetta,
        policy: &case.policy,
    });
    for (handler, want) in case.want {
        let p = plans
            .iter()
            .find(|p| p.handler == handler)
            .unwrap_or_else(|| panic!("{}: no plan for {handler}", case.what));
        match (&p.action, &want) {
            // Their reasons are long sentences: compare the kind, and that there is a reason.
            (Action::SkipUnavailable { reason }, Action::SkipUnavailable { .. })
            | (Action::Fail { reason }, Action::Fail { .. }) => {
                assert!(!reason.is_empty(), "{}: {handler}", case.what)
            }
            (got, want) => assert_eq!(got, want, "{}: {handler}", case.what),
        }
    }
}

fn base(what: &'static str, select: &'static str) -> Case {
    Case {
        what,
        select,
        entries: vec![],
        own: vec![],
        policy: InstallPolicy::default(),
        rosetta: false,
        dynamic: false,
        missing: false,
        want: vec![],
    }
}

#[test]
fn install_planning_table() {
    let c = catalog();
    let ours = entry_for(
        &c,
        "qemu-aarch64",
        "qemu-aarch64",
        "/usr/bin/qemu-aarch64-static",
        "F",
    );
    let debian = entry_for(
        &c,
        "qemu-aarch64",
        "qemu-aarch64",
        "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
        "OCF",
    );
    let other_name = entry_for(
        &c,
        "qemu-aarch64",
        "aarch64-debian",
        "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
        "OCF",
    );
    let mut disabled = ours.clone();
    disabled.enabled = false;
    let stale = entry_for(
        &c,
        "qemu-aarch64",
        "qemu-aarch64",
        "/usr/bin/qemu-aarch64-static",
        "CF",
    );
    let rosetta_foreign = entry_for(&c, "rosetta", "rosetta", "/mnt/lima-rosetta/rosetta", "CF");
    let python = Entry {
        name: "python3.11".into(),
        enabled: true,
        interpreter: "/usr/bin/python3.11".into(),
        flags: Flags::default(),
        matcher: crate::model::Matcher::Magic {
            offset: 0,
            magic: vec![0xa7, 0x0d, 0x0d, 0x0a],
            mask: None,
        },
    };
    let cases = vec![
        Case {
            want: vec![
                ("qemu-aarch64", Action::Register),
                ("qemu-x86_64", Action::SkipNative),
                ("qemu-i386", Action::SkipNative),
                ("qemu-riscv64", Action::Register),
            ],
            entries: vec![python.clone()],
            ..base("fresh install all", "all")
        },
        Case {
            entries: vec![ours.clone()],
            own: vec!["qemu-aarch64"],
            want: vec![("qemu-aarch64", Action::Keep { owned: true })],
            ..base("identical owned", "arm64")
        },
        Case {
            entries: vec![ours.clone()],
            want: vec![("qemu-aarch64", Action::Keep { owned: false })],
            ..base("identical foreign left as is", "arm64")
        },
        Case {
            entries: vec![disabled],
            own: vec!["qemu-aarch64"],
            want: vec![("qemu-aarch64", Action::Enable)],
            ..base("owned but disabled", "arm64")
        },
        Case {
            entries: vec![stale],
            own: vec!["qemu-aarch64"],
            want: vec![(
                "qemu-aarch64",
                Action::Replace {
                    remove: vec!["qemu-aarch64".into()],
                },
            )],
            ..base("differing owned is replaced", "arm64")
        },
        Case {
            entries: vec![debian.clone()],
            want: vec![(
                "qemu-aarch64",
                Action::SkipForeign {
                    provider: "qemu-aarch64".into(),
                    wins: true,
                },
            )],
            ..base("differing foreign same name untouched", "linux/arm64")
        },
        Case {
            entries: vec![debian.clone()],
            policy: InstallPolicy {
                force: true,
                ..Default::default()
            },
            want: vec![(
                "qemu-aarch64",
                Action::Replace {
                    remove: vec!["qemu-aarch64".into()],
                },
            )],
            ..base("differing foreign with force", "linux/arm64")
        },
        Case {
            entries: vec![other_name.clone()],
            want: vec![(
                "qemu-aarch64",
                Action::SkipForeign {
                    provider: "aarch64-debian".into(),
                    wins: true,
                },
            )],
            ..base("foreign entry with other name serves the ISA", "arm64")
        },
        Case {
            entries: vec![other_name],
            policy: InstallPolicy {
                force: true,
                ..Default::default()
            },
            want: vec![(
                "qemu-aarch64",
                Action::Replace {
                    remove: vec!["aarch64-debian".into()],
                },
            )],
            ..base("force removes the rival", "arm64")
        },
        Case {
            missing: true,
            want: vec![(
                "qemu-aarch64",
                Action::SkipUnavailable {
                    reason: String::new(),
                },
            )],
            ..base("all skips missing", "all")
        },
        Case {
            rosetta: true,
            want: vec![
                ("qemu-x86_64", Action::SkipNative),
                ("rosetta", Action::SkipNative),
            ],
            ..base("rosetta on an x86 host is native anyway", "all")
        },
        Case {
            entries: vec![rosetta_foreign],
            want: vec![("qemu-riscv64", Action::Register)],
            ..base("foreign rosetta does not block other ISAs", "riscv64")
        },
    ];
    for case in cases {
        run(case);
    }
}

#[test]
fn dynamic_interpreter_with_f_is_refused_unless_allowed() {
    let c = catalog();
    let sel = c.select("riscv64").unwrap();
    let mut interps = BTreeMap::new();
    interps.insert(
        "qemu-riscv64".to_string(),
        Ok(interp("/usr/bin/qemu-riscv64", false)),
    );
    let state = State::default();
    let mk = |policy: &InstallPolicy| {
        plan_install(&PlanInput {
            catalog: &c,
            selection: &sel,
            native: &[],
            entries: &[],
            state: &state,
            interpreters: &interps,
            rosetta_healthy: false,
            policy,
        })
    };
    let p = mk(&InstallPolicy::default());
    assert!(
        matches!(&p[0].action, Action::Fail { reason } if reason.contains("dynamically linked") && reason.contains("--allow-dynamic"))
    );
    let p = mk(&InstallPolicy {
        allow_dynamic: true,
        ..Default::default()
    });
    assert_eq!(p[0].action, Action::Register);
    assert_eq!(p[0].warnings.len(), 1);
    // Without F the dynamic interpreter is fine.
    let p = mk(&InstallPolicy {
        flags: Some(Flags::parse("C").unwrap()),
        ..Default::default()
    });
    assert_eq!(p[0].action, Action::Register);
    assert!(p[0]
        .line
        .as_deref()
        .unwrap()
        .ends_with(":/usr/bin/qemu-riscv64:C"));
}

#[test]
fn healthy_rosetta_replaces_qemu_x86_64_on_arm64() {
    let c = catalog();
    let state = State::default();
    let mut interps = BTreeMap::new();
    for h in c.handlers.values() {
        interps.insert(h.name.clone(), Ok(interp(&format!("/x/{}", h.name), true)));
    }
    let native = vec!["aarch64".to_string()];
    for (select, no_prefer, want_rosetta) in [
        ("all", false, true),
        ("linux/amd64", false, true),
        ("linux/amd64", true, false),
        ("all", true, false),
    ] {
        let sel = c.select(select).unwrap();
        let policy = InstallPolicy {
            no_prefer_rosetta: no_prefer,
            ..Default::default()
        };
        let plans = plan_install(&PlanInput {
            catalog: &c,
            selection: &sel,
            native: &native,
            entries: &[],
            state: &state,
            interpreters: &interps,
            rosetta_healthy: true,
            policy: &policy,
        });
        let qx = plans.iter().find(|p| p.handler == "qemu-x86_64").unwrap();
        let r = plans.iter().find(|p| p.handler == "rosetta");
        if want_rosetta {
            assert_eq!(
                qx.action,
                Action::SkipPreferred {
                    by: "rosetta".into()
                },
                "{select}"
            );
            assert_eq!(r.unwrap().action, Action::Register);
        } else {
            assert_eq!(qx.action, Action::Register, "{select}");
            assert!(r.is_none());
        }
    }
}

#[test]
fn flag_policy() {
    let c = catalog();
    let h = c.get("qemu-aarch64").unwrap();
    let table = [
        // The default never includes C (see docs/security.md).
        (InstallPolicy::default(), "F"),
        (
            InstallPolicy {
                credentials: Some(true),
                ..Default::default()
            },
            "CF",
        ),
        (
            InstallPolicy {
                credentials: Some(false),
                ..Default::default()
            },
            "F",
        ),
        (
            InstallPolicy {
                preserve_argv0: Some(true),
                ..Default::default()
            },
            "PF",
        ),
        (
            InstallPolicy {
                flags: Some(Flags::parse("OPF").unwrap()),
                ..Default::default()
            },
            "POF",
        ),
        (
            InstallPolicy {
                flags: Some(Flags::parse("OF").unwrap()),
                ..Default::default()
            },
            "OF",
        ),
    ];
    for (p, want) in table {
        assert_eq!(p.flags_for(h).to_string(), want);
    }
}

#[test]
fn entry_planning_never_touches_foreign_entries() {
    let c = catalog();
    let ours = entry_for(
        &c,
        "qemu-riscv64",
        "qemu-riscv64",
        "/usr/bin/qemu-riscv64-static",
        "F",
    );
    let debian = entry_for(
        &c,
        "qemu-aarch64",
        "qemu-aarch64",
        "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
        "OCF",
    );
    let python = Entry {
        name: "python3.11".into(),
        enabled: true,
        interpreter: "/usr/bin/python3.11".into(),
        flags: Flags::default(),
        matcher: crate::model::Matcher::Magic {
            offset: 0,
            magic: vec![0xa7, 0x0d],
            mask: None,
        },
    };
    let entries = vec![ours.clone(), debian.clone(), python];
    let mut state = State::default();
    owned(&mut state, &ours);
    let all = plan_entries(
        &c,
        &Selection::All,
        &entries,
        &state,
        EntryOp::Remove,
        false,
    );
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].name.as_str(), &all[0].plan),
        ("qemu-riscv64", &EntryPlan::Remove)
    );
    let named = plan_entries(
        &c,
        &c.select("arm64,riscv64,s390x").unwrap(),
        &entries,
        &state,
        EntryOp::Remove,
        false,
    );
    let got: Vec<_> = named
        .iter()
        .map(|d| (d.name.as_str(), d.plan.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("qemu-aarch64", EntryPlan::SkipForeign),
            ("qemu-riscv64", EntryPlan::Remove),
            ("qemu-s390x", EntryPlan::Absent)
        ]
    );
    let forced = plan_entries(
        &c,
        &c.select("arm64").unwrap(),
        &entries,
        &state,
        EntryOp::Disable,
        true,
    );
    assert_eq!(forced[0].plan, EntryPlan::Disable);
    let all_forced = plan_entries(&c, &Selection::All, &entries, &state, EntryOp::Remove, true);
    assert_eq!(all_forced.len(), 2, "python3.11 is never a catalog entry");
}
