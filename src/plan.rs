//! Pure planning: (host, catalog, kernel entries, ownership, interpreters, request) -> actions.

use crate::catalog::discover::{Interpreter, Missing};
use crate::catalog::{Catalog, Handler, Selection, Translator};
use crate::kernel::codec;
use crate::model::{Entry, Flags, Rule};
use crate::persist::State;
use serde::Serialize;
use std::collections::BTreeMap;

/// Flag and conflict policy for an install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallPolicy {
    /// Replace these handlers' default flags entirely.
    pub flags: Option<Flags>,
    /// Force C on or off.
    pub credentials: Option<bool>,
    /// Force P on or off.
    pub preserve_argv0: Option<bool>,
    /// Replace or remove entries binfmtd does not own.
    pub force: bool,
    /// Allow F with a dynamically linked interpreter.
    pub allow_dynamic: bool,
    /// Do not prefer a healthy Rosetta over qemu-x86_64.
    pub no_prefer_rosetta: bool,
}

impl InstallPolicy {
    /// The flags a handler gets under this policy.
    pub fn flags_for(&self, h: &Handler) -> Flags {
        let mut f = self
            .flags
            .unwrap_or_else(|| h.default_flags().unwrap_or_default());
        if let Some(c) = self.credentials {
            f.credentials = c;
            if !c {
                f.open_binary = false;
            }
        }
        if let Some(p) = self.preserve_argv0 {
            f.preserve_argv0 = p;
        }
        f
    }
}

/// What will happen to one handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Write a new entry.
    Register,
    /// Remove these entries (owned, or foreign under --force), then register.
    Replace { remove: Vec<String> },
    /// An identical entry exists; nothing to write.
    Keep { owned: bool },
    /// An identical owned entry exists but is disabled: enable it.
    Enable,
    /// The CPU runs this ISA without help.
    SkipNative,
    /// Another tool's entry serves this ISA; left alone without --force.
    SkipForeign { provider: String, wins: bool },
    /// A better translator serves this ISA (Rosetta over qemu-x86_64).
    SkipPreferred { by: String },
    /// `all` only: the interpreter is not installed.
    SkipUnavailable { reason: String },
    /// The request cannot be met.
    Fail { reason: String },
}

impl Action {
    /// True for actions that leave a working handler of ours to verify.
    pub fn yields_entry(&self) -> bool {
        matches!(
            self,
            Action::Register | Action::Replace { .. } | Action::Keep { .. } | Action::Enable
        )
    }
}

/// One handler's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandlerPlan {
    pub handler: String,
    pub arch: String,
    pub platform: String,
    #[serde(flatten)]
    pub action: Action,
    /// The rule to register (also set for Keep, to verify).
    #[serde(skip)]
    pub rule: Option<Rule>,
    /// The exact register line.
    pub line: Option<String>,
    pub interpreter: Option<Interpreter>,
    pub warnings: Vec<String>,
}

/// Everything the planner looks at.
#[derive(Debug)]
pub struct PlanInput<'a> {
    pub catalog: &'a Catalog,
    pub selection: &'a Selection,
    /// QEMU arch names the CPU runs natively.
    pub native: &'a [String],
    /// Kernel entries, newest first.
    pub entries: &'a [Entry],
    pub state: &'a State,
    /// Discovery result for each candidate handler.
    pub interpreters: &'a BTreeMap<String, Result<Interpreter, Missing>>,
    pub rosetta_healthy: bool,
    pub policy: &'a InstallPolicy,
}

/// The handlers an install considers, before any decision.
pub fn candidates(
    catalog: &Catalog,
    selection: &Selection,
    rosetta_healthy: bool,
    policy: &InstallPolicy,
) -> Vec<String> {
    let prefer_rosetta = rosetta_healthy && !policy.no_prefer_rosetta;
    let mut names: Vec<String> = match selection {
        Selection::All => catalog
            .handlers
            .values()
            .filter(|h| {
                h.translator == Translator::Qemu
                    || (h.translator == Translator::Rosetta && prefer_rosetta)
            })
            .map(|h| h.name.clone())
            .collect(),
        Selection::Handlers(v) => v.clone(),
    };
    // "amd64" resolves to qemu-x86_64; with a healthy Rosetta preferred, Rosetta serves it.
    if prefer_rosetta && !names.iter().any(|n| n == "rosetta") {
        if let Some(pos) = names.iter().position(|n| n == "qemu-x86_64") {
            names.insert(pos, "rosetta".to_string());
        }
    }
    names
}

/// Header bytes that a file of this handler's ISA starts with (its own magic at its offset).
pub fn sample_header(h: &Handler) -> Vec<u8> {
    let mut buf = vec![0u8; codec::BINPRM_BUF_SIZE];
    if let Ok(crate::model::Matcher::Magic { offset, magic, .. }) = h.matcher() {
        if let Some(dst) = buf.get_mut(offset..offset + magic.len()) {
            dst.copy_from_slice(&magic);
        }
    }
    buf
}

/// Plans an install.
pub fn plan_install(input: &PlanInput) -> Vec<HandlerPlan> {
    let explicit = matches!(input.selection, Selection::Handlers(_));
    let names = candidates(
        input.catalog,
        input.selection,
        input.rosetta_healthy,
        input.policy,
    );
    let rosetta_planned = names.iter().any(|n| n == "rosetta")
        && input.rosetta_healthy
        && !input.policy.no_prefer_rosetta;
    let mut out = Vec::new();
    for name in names {
        let Some(h) = input.catalog.get(&name) else {
            continue;
        };
        let mut plan = HandlerPlan {
            handler: h.name.clone(),
            arch: h.arch.clone(),
            platform: h.primary_platform(),
            action: Action::Register,
            rule: None,
            line: None,
            interpreter: None,
            warnings: vec![],
        };
        plan.action = decide(h, input, explicit, rosetta_planned, &mut plan);
        out.push(plan);
    }
    out
}

fn decide(
    h: &Handler,
    input: &PlanInput,
    explicit: bool,
    rosetta_planned: bool,
    plan: &mut HandlerPlan,
) -> Action {
    let (interp, flags) = match usable(h, input, explicit, rosetta_planned, plan) {
        Ok(found) => found,
        Err(action) => return action,
    };
    let rule = h.rule(&interp.path, flags);
    match codec::encode(&rule) {
        Ok(line) => plan.line = Some(line),
        Err(e) => {
            return Action::Fail {
                reason: e.to_string(),
            }
        }
    }
    plan.interpreter = Some(interp);
    plan.rule = Some(rule.clone());
    against_entries(h, input, &rule, plan)
}

/// Whether the handler can be registered at all here: not native, not displaced by a
/// preferred translator, with a usable interpreter and flags (pure).
fn usable(
    h: &Handler,
    input: &PlanInput,
    explicit: bool,
    rosetta_planned: bool,
    plan: &mut HandlerPlan,
) -> Result<(Interpreter, Flags), Action> {
    let unavailable = |reason: String| {
        if explicit {
            Action::Fail { reason }
        } else {
            Action::SkipUnavailable { reason }
        }
    };
    if input.native.iter().any(|a| a == &h.arch) {
        return Err(Action::SkipNative);
    }
    if h.translator == Translator::Qemu && h.arch == "x86_64" && rosetta_planned {
        return Err(Action::SkipPreferred {
            by: "rosetta".into(),
        });
    }
    let interp = match input.interpreters.get(&h.name) {
        Some(Ok(i)) => i.clone(),
        Some(Err(m)) => return Err(unavailable(m.to_string())),
        None => {
            return Err(Action::Fail {
                reason: format!("interpreter discovery was not run for {}", h.name),
            })
        }
    };
    let flags = input.policy.flags_for(h);
    if h.translator == Translator::Rosetta && !input.rosetta_healthy {
        return Err(unavailable(format!(
            "Rosetta at {} does not run: it only works inside an Apple Virtualization.framework VM",
            interp.path.display()
        )));
    }
    if flags.fix_binary && !interp.static_linked {
        let reason = format!(
            "{} is dynamically linked; with the F flag only the interpreter file is pinned and its shared libraries would be looked up inside each container, where they are usually missing. Install the static build (qemu-user-static) or pass --allow-dynamic",
            interp.path.display()
        );
        if !input.policy.allow_dynamic {
            return Err(unavailable(reason));
        }
        plan.warnings.push(reason);
    }
    Ok((interp, flags))
}

/// What to do given the kernel's entries: keep, enable, replace, register, or leave
/// another tool's entry alone (pure).
fn against_entries(h: &Handler, input: &PlanInput, rule: &Rule, plan: &mut HandlerPlan) -> Action {
    let header = sample_header(h);
    let same_name = input.entries.iter().find(|e| e.name == h.name);
    // Entries with other names that would also take this ISA's binaries.
    let rivals: Vec<&Entry> = input
        .entries
        .iter()
        .filter(|e| e.name != h.name && e.matcher.matches(&header, None))
        .collect();
    let winner = codec::winner(input.entries, true, &header, None).map(|e| e.name.clone());
    let mut remove = Vec::new();
    if let Some(e) = same_name {
        let owned = input.state.owns(e);
        if rule.same_as(e) {
            if !e.enabled && owned {
                return Action::Enable;
            }
            if !e.enabled {
                plan.warnings.push(format!(
                    "identical entry {} exists but is disabled and not owned by binfmtd; `binfmtd enable --force {}` enables it",
                    e.name, e.name
                ));
            }
            if e.enabled && winner.as_deref() != Some(e.name.as_str()) {
                plan.warnings.push(format!(
                    "entry {} is shadowed: {} wins for this ISA because it was registered later",
                    e.name,
                    winner.clone().unwrap_or_else(|| "no enabled entry".into())
                ));
            }
            return Action::Keep { owned };
        } else if !owned && !input.policy.force {
            return Action::SkipForeign {
                provider: e.name.clone(),
                wins: winner.as_deref() == Some(&e.name),
            };
        }
        remove.push(e.name.clone());
    }
    for r in rivals {
        let owned = input.state.owns(r);
        if owned || input.policy.force {
            remove.push(r.name.clone());
        } else if r.enabled {
            return Action::SkipForeign {
                provider: r.name.clone(),
                wins: winner.as_deref() == Some(&r.name),
            };
        }
    }
    if remove.is_empty() {
        Action::Register
    } else {
        Action::Replace { remove }
    }
}

/// What uninstall, enable or disable will do to one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum EntryPlan {
    Remove,
    Enable,
    Disable,
    /// Already in the requested state.
    Unchanged,
    /// Not created by binfmtd; needs --force.
    SkipForeign,
    /// Nothing registered under this name.
    Absent,
}

/// One entry-level decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryDecision {
    pub name: String,
    pub handler: Option<String>,
    #[serde(flatten)]
    pub plan: EntryPlan,
    /// The entry was binfmtd's.
    pub owned: bool,
}

/// The operation applied to existing entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryOp {
    Remove,
    Enable,
    Disable,
}

/// Plans uninstall/enable/disable. `all` means every entry binfmtd owns (and, with force,
/// every entry any catalog handler would create or that serves a catalog ISA).
pub fn plan_entries(
    catalog: &Catalog,
    selection: &Selection,
    entries: &[Entry],
    state: &State,
    op: EntryOp,
    force: bool,
) -> Vec<EntryDecision> {
    let targets: Vec<(String, Option<String>)> = match selection {
        Selection::All => {
            let mut v: Vec<(String, Option<String>)> = entries
                .iter()
                .filter(|e| state.owns(e))
                .map(|e| {
                    (
                        e.name.clone(),
                        state.entries.get(&e.name).map(|o| o.handler.clone()),
                    )
                })
                .collect();
            if force {
                for e in entries {
                    if !v.iter().any(|(n, _)| n == &e.name) && catalog.get(&e.name).is_some() {
                        v.push((e.name.clone(), Some(e.name.clone())));
                    }
                }
            }
            v
        }
        Selection::Handlers(names) => {
            let mut v = Vec::new();
            for n in names {
                let Some(h) = catalog.get(n) else { continue };
                let header = sample_header(h);
                // The handler's own entry, plus every other entry serving the ISA (foreign ones
                // are reported, and changed only with force).
                let mut found = false;
                for e in entries {
                    let serves = e.name == h.name || e.matcher.matches(&header, None);
                    if serves
                        && !v
                            .iter()
                            .any(|(x, _): &(String, Option<String>)| x == &e.name)
                    {
                        v.push((e.name.clone(), Some(h.name.clone())));
                        found = true;
                    }
                }
                if !found {
                    v.push((h.name.clone(), Some(h.name.clone())));
                }
            }
            v
        }
    };
    targets
        .into_iter()
        .map(|(name, handler)| {
            let entry = entries.iter().find(|e| e.name == name);
            let owned = entry.is_some_and(|e| state.owns(e));
            let plan = match entry {
                None => EntryPlan::Absent,
                Some(_) if !owned && !force => EntryPlan::SkipForeign,
                Some(e) => match op {
                    EntryOp::Remove => EntryPlan::Remove,
                    EntryOp::Enable if e.enabled => EntryPlan::Unchanged,
                    EntryOp::Enable => EntryPlan::Enable,
                    EntryOp::Disable if !e.enabled => EntryPlan::Unchanged,
                    EntryOp::Disable => EntryPlan::Disable,
                },
            };
            EntryDecision {
                name,
                handler,
                plan,
                owned,
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
