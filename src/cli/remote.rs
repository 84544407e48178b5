//! The D-Bus path: mutating commands go through the binfmtd daemon when it is reachable, so
//! that admins with polkit rights need no sudo and the daemon keeps what was installed.

use super::{Global, PolicyArgs};
use crate::dbus::types::ItemReport;
use serde::Serialize;
use std::collections::HashMap;
use zbus::Variant as Value;

pub use crate::ops::status::Route;

/// A mutating request in D-Bus terms.
#[derive(Debug, Clone)]
pub enum Request {
    Install {
        platforms: Vec<String>,
        flags: Option<String>,
        force: bool,
        persist: bool,
        allow_dynamic: bool,
        verify: bool,
    },
    Uninstall {
        platforms: Vec<String>,
    },
    Enable {
        platforms: Vec<String>,
    },
    Disable {
        platforms: Vec<String>,
    },
}

/// What the daemon answered.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteReport {
    pub schema: &'static str,
    pub via: &'static str,
    pub operation: &'static str,
    pub items: Vec<ItemReport>,
    pub ok: bool,
}

/// Why a change could not go through the daemon.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("the binfmtd daemon refused {operation}: {message}; an administrator can grant the polkit action org.binfmtd1.manage, or run the command as root")]
    Denied {
        operation: &'static str,
        message: String,
    },
    #[error("the binfmtd daemon failed {operation}: {message}; see `journalctl -u binfmtd`, or pass --no-daemon to act directly as root")]
    Failed {
        operation: &'static str,
        message: String,
    },
    #[error("--require-daemon: {operation} cannot go through the binfmtd daemon: {reason}; start it (`systemctl start binfmtd`) or drop --require-daemon")]
    Unreachable {
        operation: &'static str,
        reason: String,
    },
}

/// Splits a CLI list into the D-Bus platform array.
pub fn words(list: &str) -> Vec<String> {
    list.split(',')
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Decides (purely) whether a command may go to the daemon at all.
pub fn eligible(
    global: &Global,
    no_daemon_env: bool,
    dry_run: bool,
    policy: Option<&PolicyArgs>,
) -> Result<(), String> {
    if global.no_daemon || no_daemon_env {
        return Err("--no-daemon or BINFMTD_NO_DAEMON".into());
    }
    if dry_run {
        return Err("--dry-run is computed locally".into());
    }
    if global.paths() != crate::config::Paths::default() {
        return Err("non-default paths select another instance than the daemon's".into());
    }
    if let Some(p) = policy {
        if p.credentials
            || p.no_credentials
            || p.preserve_argv0
            || p.no_preserve_argv0
            || p.no_prefer_rosetta
        {
            return Err("--[no-]credentials, --[no-]preserve-argv0 and --no-prefer-rosetta are not part of the D-Bus API; use --flags".into());
        }
    }
    Ok(())
}

pub fn name(r: &Request) -> &'static str {
    match r {
        Request::Install { .. } => "install",
        Request::Uninstall { .. } => "uninstall",
        Request::Enable { .. } => "enable",
        Request::Disable { .. } => "disable",
    }
}

/// Sends the request when the daemon is reachable; `Ok(None)` means it is not (act directly).
pub fn send(req: &Request) -> Result<Option<RemoteReport>, RemoteError> {
    let Some((rt, proxy)) = crate::dbus::client::try_connect_blocking() else {
        return Ok(None);
    };
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let operation = name(req);
    let result = rt.block_on(async {
        match req {
            Request::Install {
                platforms,
                flags,
                force,
                persist,
                allow_dynamic,
                verify,
            } => {
                let p: Vec<&str> = platforms.iter().map(String::as_str).collect();
                let mut o: HashMap<&str, Value<'_>> = HashMap::new();
                if let Some(f) = flags {
                    o.insert("flags", Value::from(f.as_str()));
                }
                o.insert("force", Value::from(*force));
                o.insert("persist", Value::from(*persist));
                o.insert("allow_dynamic", Value::from(*allow_dynamic));
                o.insert("verify", Value::from(*verify));
                proxy.install(&p, o, interactive).await
            }
            Request::Uninstall { platforms } => {
                let p: Vec<&str> = platforms.iter().map(String::as_str).collect();
                proxy.uninstall(&p, HashMap::new(), interactive).await
            }
            Request::Enable { platforms } => {
                let p: Vec<&str> = platforms.iter().map(String::as_str).collect();
                proxy.enable(&p, interactive).await
            }
            Request::Disable { platforms } => {
                let p: Vec<&str> = platforms.iter().map(String::as_str).collect();
                proxy.disable(&p, interactive).await
            }
        }
    });
    match result {
        Ok(items) => {
            let ok = items.iter().all(|i| i.outcome != "failed");
            Ok(Some(RemoteReport {
                schema: "binfmtd.remote/v1",
                via: "daemon",
                operation,
                items,
                ok,
            }))
        }
        Err(zbus::Error::MethodError(n, msg, _)) if n.as_str().ends_with("AccessDenied") => {
            Err(RemoteError::Denied {
                operation,
                message: msg.unwrap_or_default(),
            })
        }
        Err(zbus::Error::MethodError(n, msg, _))
            if n.as_str().ends_with("ServiceUnknown") || n.as_str().ends_with("NameHasNoOwner") =>
        {
            tracing::info!(
                "daemon not reachable ({n}: {}); acting directly",
                msg.unwrap_or_default()
            );
            Ok(None)
        }
        Err(e) => Err(RemoteError::Failed {
            operation,
            message: e.to_string(),
        }),
    }
}

/// Where changes would go right now, for `status`.
pub fn probe_route(global: &Global, no_daemon_env: bool) -> Route {
    if let Err(reason) = eligible(global, no_daemon_env, false, None) {
        return Route {
            via: "direct",
            reason,
            daemon_version: None,
        };
    }
    match crate::dbus::client::try_connect_blocking() {
        Some((rt, proxy)) => Route {
            via: "daemon",
            reason: "org.binfmtd1 is on the system bus".into(),
            daemon_version: rt.block_on(proxy.version()).ok(),
        },
        None => Route {
            via: "direct",
            reason: "no binfmtd daemon on the system bus (changes need root)".into(),
            daemon_version: None,
        },
    }
}

/// True when BINFMTD_NO_DAEMON is set to anything but empty or `0`.
pub fn no_daemon_env() -> bool {
    std::env::var("BINFMTD_NO_DAEMON").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Records a direct change in the daemon's desired state, so a running (or later started)
/// daemon keeps what was installed and does not restore what was removed. Keys are canonical
/// handler names, as the daemon records them; flags chosen with `--[no-]credentials` or
/// `--[no-]preserve-argv0` are recorded as the effective flags of each handler.
pub fn record_direct(
    paths: &crate::config::Paths,
    catalog: &crate::catalog::Catalog,
    req: &Request,
    policy: Option<&crate::plan::InstallPolicy>,
) -> Result<(), String> {
    use crate::daemon::desired::{canonical_keys, effective, Config, Recorded};
    let mut rec = Recorded::load(&paths.state_dir).map_err(|e| e.to_string())?;
    let config = Config::load(&paths.config_dir).unwrap_or_default();
    let canon = |w: &str| catalog.canonical(w);
    let current: Vec<String> = effective(&config, &rec, &canon)
        .into_iter()
        .map(|w| w.platform)
        .collect();
    match req {
        Request::Install {
            platforms,
            flags,
            persist,
            allow_dynamic,
            ..
        } => {
            for w in platforms {
                let key = if w.eq_ignore_ascii_case("all") {
                    "all".to_string()
                } else {
                    canon(w)
                };
                let derived = policy
                    .filter(|p| p.credentials.is_some() || p.preserve_argv0.is_some())
                    .and_then(|p| catalog.get(&key).map(|h| p.flags_for(h).to_string()));
                let o = crate::dbus::types::InstallOptions {
                    flags: flags.clone().or(derived),
                    force: false,
                    persist: *persist,
                    allow_dynamic: *allow_dynamic,
                    verify: true,
                };
                rec.install(&key, &o);
            }
        }
        Request::Uninstall { platforms } => canonical_keys(platforms, &canon, &current)
            .iter()
            .for_each(|k| rec.uninstall(k)),
        Request::Enable { platforms } => canonical_keys(platforms, &canon, &current)
            .iter()
            .for_each(|k| rec.set_enabled(k, true)),
        Request::Disable { platforms } => canonical_keys(platforms, &canon, &current)
            .iter()
            .for_each(|k| rec.set_enabled(k, false)),
    }
    rec.save(&paths.state_dir).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn global(args: &[&str]) -> Global {
        let mut v = vec!["binfmtd"];
        v.extend_from_slice(args);
        v.push("status");
        super::super::Cli::parse_from(v).global
    }

    #[test]
    fn eligibility_table() {
        let plain = global(&[]);
        let policy = |f: fn(&mut PolicyArgs)| {
            let mut p = PolicyArgs {
                flags: None,
                credentials: false,
                no_credentials: false,
                preserve_argv0: false,
                no_preserve_argv0: false,
                force: false,
                allow_dynamic: false,
                no_prefer_rosetta: false,
            };
            f(&mut p);
            p
        };
        assert!(eligible(&plain, false, false, None).is_ok());
        assert!(eligible(&plain, true, false, None).is_err());
        assert!(eligible(&global(&["--no-daemon"]), false, false, None).is_err());
        assert!(eligible(&plain, false, true, None).is_err());
        assert!(eligible(&global(&["--state-dir", "/tmp/x"]), false, false, None).is_err());
        assert!(eligible(&plain, false, false, Some(&policy(|p| p.force = true))).is_ok());
        assert!(eligible(
            &plain,
            false,
            false,
            Some(&policy(|p| p.flags = Some("F".into())))
        )
        .is_ok());
        assert!(eligible(
            &plain,
            false,
            false,
            Some(&policy(|p| p.credentials = true))
        )
        .is_err());
        assert_eq!(
            words(" linux/arm64, riscv64 ,,"),
            vec!["linux/arm64", "riscv64"]
        );
    }
}
