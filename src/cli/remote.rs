//! The D-Bus path: mutating commands go through the binfmtd daemon when it is reachable, so
//! that admins with polkit rights need no sudo and the daemon keeps what was installed.

use super::{Global, PolicyArgs};
use crate::catalog::Selection;
use crate::dbus::types::ItemReport;
use crate::engine::entries::op_name;
use crate::engine::{EntriesRequest, InstallRequest};
use crate::plan::EntryOp;
use serde::Serialize;
use std::collections::HashMap;
use zbus::Variant as Value;

pub use crate::ops::status::Route;

/// A change parsed once from the command line: what goes to the daemon or to the engine.
#[derive(Debug, Clone)]
pub enum Request {
    Install(InstallRequest),
    Entries(EntriesRequest),
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

/// The D-Bus platform array of a selection: `all`, or the canonical handler names.
pub fn words(selection: &Selection) -> Vec<String> {
    crate::engine::request::keys(selection)
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
        Request::Install(_) => "install",
        Request::Entries(e) => op_name(e.op),
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
            Request::Install(r) => {
                let platforms = words(&r.selection);
                let p: Vec<&str> = platforms.iter().map(String::as_str).collect();
                let flags = r.options.policy.flags.map(|f| f.to_string());
                let mut o: HashMap<&str, Value<'_>> = HashMap::new();
                if let Some(f) = &flags {
                    o.insert("flags", Value::from(f.as_str()));
                }
                o.insert("force", Value::from(r.options.policy.force));
                o.insert("persist", Value::from(r.options.persist));
                o.insert("allow_dynamic", Value::from(r.options.policy.allow_dynamic));
                o.insert("verify", Value::from(r.options.verify));
                proxy.install(&p, o, interactive).await
            }
            Request::Entries(e) => {
                let platforms = words(&e.selection);
                let p: Vec<&str> = platforms.iter().map(String::as_str).collect();
                match e.op {
                    EntryOp::Remove => proxy.uninstall(&p, HashMap::new(), interactive).await,
                    EntryOp::Enable => proxy.enable(&p, interactive).await,
                    EntryOp::Disable => proxy.disable(&p, interactive).await,
                }
            }
        }
    });
    answer(operation, result)
}

fn answer(
    operation: &'static str,
    result: zbus::Result<Vec<ItemReport>>,
) -> Result<Option<RemoteReport>, RemoteError> {
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
        assert_eq!(words(&Selection::All), vec!["all"]);
        assert_eq!(
            words(&Selection::Handlers(vec!["qemu-aarch64".into()])),
            vec!["qemu-aarch64"]
        );
    }
}
