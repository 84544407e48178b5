//! Typed requests with binfmtd's own defaults, parsed once at the edge (CLI or D-Bus).

use crate::catalog::{Catalog, Handler, SelectError, Selection};
use crate::model::Flags;
use crate::persist::desired::InstallSpec;
use crate::plan::{EntryOp, InstallPolicy};

/// How to install. The defaults are binfmtd's, not any transport's: verify is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOptions {
    pub policy: InstallPolicy,
    /// Also write systemd binfmt.d files (only for verified handlers).
    pub persist: bool,
    /// Probe every registered handler (on unless the caller opts out).
    pub verify: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            policy: InstallPolicy::default(),
            persist: false,
            verify: true,
        }
    }
}

impl InstallOptions {
    /// What the desired state keeps for `handler` installed with these options: explicit
    /// flags, or the effective flags a `--[no-]credentials`/`--[no-]preserve-argv0` policy
    /// gives that handler.
    pub fn spec_for(&self, handler: Option<&Handler>) -> InstallSpec {
        let p = &self.policy;
        let derived = (p.credentials.is_some() || p.preserve_argv0.is_some())
            .then(|| handler.map(|h| p.flags_for(h)))
            .flatten();
        InstallSpec {
            flags: p.flags.or(derived).map(|f| f.to_string()),
            persist: self.persist,
            allow_dynamic: p.allow_dynamic,
        }
    }

    /// The options a recorded spec stands for (verified, never forced).
    pub fn from_spec(spec: &InstallSpec) -> Result<Self, crate::model::UnknownFlag> {
        let flags = spec.flags.as_deref().map(Flags::parse).transpose()?;
        Ok(InstallOptions {
            policy: InstallPolicy {
                flags,
                allow_dynamic: spec.allow_dynamic,
                ..InstallPolicy::default()
            },
            persist: spec.persist,
            verify: true,
        })
    }
}

/// Who asked: a person or program (recorded in the desired state), or the daemon keeping
/// the desired state (which records nothing new).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Request,
    Keep,
}

/// An install: which handlers, how, and whether only to plan.
#[derive(Debug, Clone)]
pub struct InstallRequest {
    pub selection: Selection,
    pub options: InstallOptions,
    pub dry_run: bool,
    pub origin: Origin,
}

/// An uninstall, enable or disable of existing entries.
#[derive(Debug, Clone)]
pub struct EntriesRequest {
    pub selection: Selection,
    pub op: EntryOp,
    /// Change entries binfmtd does not own.
    pub force: bool,
    pub dry_run: bool,
}

/// Parses the words of a request (`all`, platforms, aliases, handler names) into a
/// selection, once: every later step takes the typed selection.
pub fn select<S: AsRef<str>>(catalog: &Catalog, words: &[S]) -> Result<Selection, SelectError> {
    let list: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
    catalog.select(&list.join(","))
}

/// The desired-state keys of a selection: `all`, or each canonical handler name.
pub fn keys(selection: &Selection) -> Vec<String> {
    match selection {
        Selection::All => vec![crate::persist::desired::ALL.to_string()],
        Selection::Handlers(h) => h.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_verify_and_never_add_credentials() {
        let o = InstallOptions::default();
        assert!(o.verify);
        assert_eq!(o.policy.credentials, None);
        assert!(!o.policy.force);
    }

    #[test]
    fn spec_round_trip_table() {
        let catalog = Catalog::load(None).expect("embedded catalog loads");
        let h = catalog.get("qemu-aarch64");
        let cases: Vec<(InstallPolicy, Option<&str>)> = vec![
            (InstallPolicy::default(), None),
            (
                InstallPolicy {
                    flags: Some(Flags::parse("OPF").expect("flags")),
                    ..Default::default()
                },
                Some("POF"),
            ),
            (
                InstallPolicy {
                    credentials: Some(true),
                    ..Default::default()
                },
                Some("CF"),
            ),
        ];
        for (policy, want) in cases {
            let o = InstallOptions {
                policy: policy.clone(),
                persist: true,
                verify: true,
            };
            let spec = o.spec_for(h);
            let got = spec.flags.as_deref().map(|f| {
                let mut v: Vec<char> = f.chars().collect();
                v.sort_unstable();
                v.into_iter().collect::<String>()
            });
            let want = want.map(|w| {
                let mut v: Vec<char> = w.chars().collect();
                v.sort_unstable();
                v.into_iter().collect::<String>()
            });
            assert_eq!(got, want, "{policy:?}");
            let back = InstallOptions::from_spec(&spec).expect("valid flags");
            assert!(back.verify && back.persist && !back.policy.force);
        }
    }
}
