//! Wire types of org.binfmtd1.Manager and the pure parsing of its `a{sv}` options.

use super::errors::Error;
use crate::daemon::backend::HandlerView;
use crate::engine::{InstallOptions, Item};
use crate::model::Flags;
use crate::plan::InstallPolicy;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use zbus::{OwnedVariant, Type};

/// One binfmt_misc entry as the `Handlers` property shows it: `(ssssbsb)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct HandlerInfo {
    /// Entry name in binfmt_misc (e.g. `qemu-aarch64`).
    pub name: String,
    /// OCI platform it serves (e.g. `linux/arm64`), empty when unknown.
    pub platform: String,
    pub interpreter: String,
    /// Flags as the kernel reports them, in `POCF` order.
    pub flags: String,
    pub enabled: bool,
    /// `binfmtd` for entries binfmtd registered; else who registered it (a binfmt.d file,
    /// a package) or `unknown`.
    pub owner: String,
    /// True when this entry is the one the kernel uses for its magic (newest enabled match).
    pub wins: bool,
}

/// What happened to one platform/handler in a method call: `(ssss)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ItemReport {
    pub platform: String,
    pub handler: String,
    /// One word: installed, unchanged, replaced, removed, absent, enabled, disabled, skipped, failed.
    pub outcome: String,
    /// What was done or why not, and what to do about it.
    pub message: String,
}

impl From<&HandlerView> for HandlerInfo {
    fn from(h: &HandlerView) -> Self {
        HandlerInfo {
            name: h.name.clone(),
            platform: h.platform.clone(),
            interpreter: h.interpreter.clone(),
            flags: h.flags.clone(),
            enabled: h.enabled,
            owner: h.owner.clone(),
            wins: h.wins,
        }
    }
}

impl From<Item> for ItemReport {
    fn from(i: Item) -> Self {
        ItemReport {
            platform: i.platform,
            handler: i.handler,
            outcome: i.outcome.word().to_string(),
            message: i.message,
        }
    }
}

fn get_bool(
    options: &HashMap<String, OwnedVariant>,
    key: &str,
    default: bool,
) -> Result<bool, Error> {
    match options.get(key) {
        None => Ok(default),
        Some(v) => v.downcast_ref::<bool>().map_err(|_| {
            Error::InvalidArgument(format!(
                "option {key:?} must be a boolean (variant type b), got type {}; pass e.g. {key} b true",
                v.value_signature()
            ))
        }),
    }
}

fn reject_unknown(options: &HashMap<String, OwnedVariant>, known: &[&str]) -> Result<(), Error> {
    let mut unknown: Vec<&str> = options
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    Err(Error::InvalidArgument(format!(
        "unknown option(s) {}; known options are {}",
        unknown.join(", "),
        known.join(", ")
    )))
}

/// Parses `Install`'s options into the engine's, once; unknown keys and wrong types are
/// rejected with a message. Absent keys take binfmtd's defaults (verify is on).
pub fn parse_install_options(
    options: &HashMap<String, OwnedVariant>,
) -> Result<InstallOptions, Error> {
    reject_unknown(
        options,
        &["flags", "force", "persist", "allow_dynamic", "verify"],
    )?;
    let flags = match options.get("flags") {
        None => None,
        Some(v) => {
            let text: String = v.downcast_ref::<String>().map_err(|_| {
                Error::InvalidArgument(format!(
                    "option \"flags\" must be a string (variant type s) such as \"OPF\", got type {}",
                    v.value_signature()
                ))
            })?;
            Some(Flags::parse(&text).map_err(|e| {
                Error::InvalidArgument(format!(
                    "option \"flags\" = {text:?}: {e}; use letters from P, O, C, F"
                ))
            })?)
        }
    };
    let defaults = InstallOptions::default();
    Ok(InstallOptions {
        policy: InstallPolicy {
            flags,
            force: get_bool(options, "force", false)?,
            allow_dynamic: get_bool(options, "allow_dynamic", false)?,
            ..InstallPolicy::default()
        },
        persist: get_bool(options, "persist", defaults.persist)?,
        verify: get_bool(options, "verify", defaults.verify)?,
    })
}

/// Parses `Uninstall`'s options: none yet. binfmt.d files binfmtd wrote are always removed
/// with their entries, or they would bring the entries back at the next boot.
pub fn parse_uninstall_options(options: &HashMap<String, OwnedVariant>) -> Result<(), Error> {
    reject_unknown(options, &[])
}

/// Parses `ListEmulated`'s options into the sampling window (default: one pass).
pub fn parse_list_options(
    options: &HashMap<String, OwnedVariant>,
) -> Result<std::time::Duration, Error> {
    reject_unknown(options, &["sample"])?;
    let Some(v) = options.get("sample") else {
        return Ok(std::time::Duration::ZERO);
    };
    let secs: f64 = v.downcast_ref::<f64>().map_err(|_| {
        Error::InvalidArgument(format!(
            "option \"sample\" must be a double (variant type d) in seconds, got type {}",
            v.value_signature()
        ))
    })?;
    if !(0.0..=10.0).contains(&secs) {
        return Err(Error::InvalidArgument(format!(
            "option \"sample\" = {secs}: give 0 (one pass) to 10 seconds"
        )));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Rejects an empty platform list or an empty word in it.
pub fn check_platforms(platforms: &[String]) -> Result<(), Error> {
    if platforms.is_empty() {
        return Err(Error::InvalidArgument(
            "no platforms given; pass at least one, e.g. [\"linux/arm64\"]".into(),
        ));
    }
    if let Some(bad) = platforms.iter().find(|p| p.trim().is_empty()) {
        return Err(Error::InvalidArgument(format!(
            "empty platform name {bad:?} in the list; remove it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::Variant;

    fn opts(pairs: &[(&str, Variant<'static>)]) -> HashMap<String, OwnedVariant> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OwnedVariant::try_from(v).unwrap()))
            .collect()
    }

    #[test]
    fn install_options_table() {
        let with = |f: fn(&mut InstallOptions)| {
            let mut o = InstallOptions::default();
            f(&mut o);
            Ok::<_, ()>(o)
        };
        type Case = (
            Vec<(&'static str, Variant<'static>)>,
            Result<InstallOptions, ()>,
        );
        let cases: Vec<Case> = vec![
            (vec![], with(|_| {})),
            (
                vec![
                    ("force", Variant::new(true)),
                    ("persist", Variant::new(true)),
                ],
                with(|o| {
                    o.policy.force = true;
                    o.persist = true;
                }),
            ),
            (
                vec![
                    ("flags", Variant::new("OPF")),
                    ("verify", Variant::new(false)),
                ],
                with(|o| {
                    o.policy.flags = Flags::parse("OPF").ok();
                    o.verify = false;
                }),
            ),
            (
                vec![("allow_dynamic", Variant::new(true))],
                with(|o| o.policy.allow_dynamic = true),
            ),
            (vec![("flags", Variant::new("FX"))], Err(())),
            (vec![("flags", Variant::new(3u32))], Err(())),
            (vec![("force", Variant::new("yes"))], Err(())),
            (vec![("colour", Variant::new(true))], Err(())),
        ];
        for (input, expected) in cases {
            let got = parse_install_options(&opts(&input));
            match (&expected, &got) {
                (Ok(e), Ok(g)) => assert_eq!(e, g),
                (Err(()), Err(e)) => {
                    assert_eq!(e.dbus_name(), "org.binfmtd1.Error.InvalidArgument")
                }
                _ => panic!("{input:?}: expected {expected:?}, got {got:?}"),
            }
        }
        // Verify is on unless the caller turns it off: the daemon never registers unproven.
        assert!(parse_install_options(&opts(&[])).is_ok_and(|o| o.verify));
    }

    #[test]
    fn uninstall_options_and_platform_lists() {
        assert!(parse_uninstall_options(&opts(&[])).is_ok());
        assert!(parse_uninstall_options(&opts(&[("persist", Variant::new(true))])).is_err());
        assert!(parse_uninstall_options(&opts(&[("force", Variant::new(true))])).is_err());
        assert!(check_platforms(&[]).is_err());
        assert!(check_platforms(&["linux/arm64".into(), " ".into()]).is_err());
        assert!(check_platforms(&["linux/arm64".into()]).is_ok());
    }

    #[test]
    fn handler_info_signature_is_stable() {
        assert_eq!(HandlerInfo::SIGNATURE, "(ssssbsb)");
        assert_eq!(ItemReport::SIGNATURE, "(ssss)");
    }
}
