//! Typed outcomes of a change, with the one function that describes each in words.

use crate::plan::{Action, EntryOp, EntryPlan};
use serde::Serialize;

/// How one handler's part of a request ended: the JSON `result` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Done (or already so) and, where asked, verified.
    Ok,
    /// Deliberately left alone (native, preferred translator, not installed, absent).
    Skipped,
    /// The request for this handler was not met; the error says why and what to do.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }
}

/// What happened to one platform or handler, in one word. Shared by the CLI's text and
/// JSON, the daemon's log and the D-Bus report (its `outcome` string is [`Outcome::word`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Installed,
    Replaced,
    Unchanged,
    Enabled,
    Disabled,
    Removed,
    Absent,
    Conflict,
    Skipped,
    Failed,
}

impl Outcome {
    /// The stable word (D-Bus `outcome`, JSON `outcome`).
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Installed => "installed",
            Outcome::Replaced => "replaced",
            Outcome::Unchanged => "unchanged",
            Outcome::Enabled => "enabled",
            Outcome::Disabled => "disabled",
            Outcome::Removed => "removed",
            Outcome::Absent => "absent",
            Outcome::Conflict => "conflict",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }

    /// True when the kernel was changed (a repair, when the daemon reconciles).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Outcome::Installed
                | Outcome::Replaced
                | Outcome::Enabled
                | Outcome::Disabled
                | Outcome::Removed
        )
    }

    /// The outcome of an install plan that ended with `status` (pure).
    pub fn of_install(status: Status, action: &Action) -> Outcome {
        if status == Status::Failed {
            return Outcome::Failed;
        }
        match action {
            Action::Register => Outcome::Installed,
            Action::Replace { .. } => Outcome::Replaced,
            Action::Keep { .. } => Outcome::Unchanged,
            Action::Enable => Outcome::Enabled,
            Action::SkipForeign { .. } => Outcome::Conflict,
            Action::SkipNative | Action::SkipPreferred { .. } | Action::SkipUnavailable { .. } => {
                Outcome::Skipped
            }
            Action::Fail { .. } => Outcome::Failed,
        }
    }

    /// The outcome of an uninstall/enable/disable decision that ended with `status` (pure).
    pub fn of_entry(status: Status, plan: &EntryPlan) -> Outcome {
        if status == Status::Failed {
            return Outcome::Failed;
        }
        match plan {
            EntryPlan::Remove => Outcome::Removed,
            EntryPlan::Enable => Outcome::Enabled,
            EntryPlan::Disable => Outcome::Disabled,
            EntryPlan::Unchanged => Outcome::Unchanged,
            EntryPlan::Absent => Outcome::Absent,
            EntryPlan::SkipForeign => Outcome::Conflict,
        }
    }
}

/// What an install action did, in words (pure); `error` wins when there is one.
pub fn describe_install(action: &Action, error: Option<&str>) -> String {
    if let Some(e) = error {
        return e.to_string();
    }
    match action {
        Action::Register => "registered".into(),
        Action::Replace { remove } => format!("registered after removing {}", remove.join(", ")),
        Action::Keep { owned: true } => "already registered by binfmtd".into(),
        Action::Keep { owned: false } => "an identical entry is registered already".into(),
        Action::Enable => "was disabled; enabled".into(),
        Action::SkipNative => "the CPU runs this platform natively".into(),
        Action::SkipForeign { provider, .. } => {
            format!("{provider} (not binfmtd's) serves this platform; force replaces it")
        }
        Action::SkipPreferred { by } => format!("{by} serves it instead (preferred)"),
        Action::SkipUnavailable { reason } | Action::Fail { reason } => reason.clone(),
    }
}

/// What an entry decision did, in words (pure); `error` wins when there is one.
pub fn describe_entry(plan: &EntryPlan, op: EntryOp, name: &str, error: Option<&str>) -> String {
    if let Some(e) = error {
        return e.to_string();
    }
    match (plan, op) {
        (EntryPlan::Remove, _) => format!("removed entry {name}"),
        (EntryPlan::Enable, _) => format!("enabled entry {name}"),
        (EntryPlan::Disable, _) => format!("disabled entry {name}"),
        (EntryPlan::Unchanged, EntryOp::Enable) => format!("entry {name} is enabled already"),
        (EntryPlan::Unchanged, _) => format!("entry {name} is disabled already"),
        (EntryPlan::Absent, _) => format!("no entry {name} is registered"),
        (EntryPlan::SkipForeign, _) => {
            format!("entry {name} was not created by binfmtd; force changes it anyway")
        }
    }
}

/// One handler's result in transport-neutral form: what the D-Bus report and the CLI's
/// daemon output carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub platform: String,
    pub handler: String,
    pub outcome: Outcome,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_outcomes() {
        let foreign = Action::SkipForeign {
            provider: "x".into(),
            wins: true,
        };
        let cases = [
            (Status::Ok, Action::Register, Outcome::Installed),
            (Status::Failed, Action::Register, Outcome::Failed),
            (
                Status::Ok,
                Action::Replace { remove: vec![] },
                Outcome::Replaced,
            ),
            (
                Status::Skipped,
                Action::Keep { owned: true },
                Outcome::Unchanged,
            ),
            (Status::Ok, Action::Enable, Outcome::Enabled),
            (Status::Skipped, foreign, Outcome::Conflict),
            (Status::Skipped, Action::SkipNative, Outcome::Skipped),
            (
                Status::Failed,
                Action::Fail { reason: "r".into() },
                Outcome::Failed,
            ),
        ];
        for (status, action, want) in cases {
            assert_eq!(Outcome::of_install(status, &action), want, "{action:?}");
        }
    }

    #[test]
    fn entry_outcomes_and_writes() {
        let cases = [
            (EntryPlan::Remove, Outcome::Removed, true),
            (EntryPlan::Enable, Outcome::Enabled, true),
            (EntryPlan::Disable, Outcome::Disabled, true),
            (EntryPlan::Unchanged, Outcome::Unchanged, false),
            (EntryPlan::Absent, Outcome::Absent, false),
            (EntryPlan::SkipForeign, Outcome::Conflict, false),
        ];
        for (plan, want, write) in cases {
            let got = Outcome::of_entry(Status::Ok, &plan);
            assert_eq!(got, want);
            assert_eq!(got.is_write(), write);
            assert_eq!(Outcome::of_entry(Status::Failed, &plan), Outcome::Failed);
        }
        assert_eq!(Outcome::Conflict.word(), "conflict");
    }
}
