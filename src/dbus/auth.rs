//! Authorization of state-changing methods: uid 0, else polkit on the caller's bus name.
//!
//! The decision rules are pure functions ([`by_uid`], [`from_polkit`]) with table tests; the
//! [`Authorizer`] trait is the seam that unit tests substitute, and [`BusAuthorizer`] is the
//! real path (bus credentials + `org.freedesktop.PolicyKit1.Authority.CheckAuthorization`).

use super::errors::Error;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use zbus::message::{Flags, Header};
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

/// The polkit action that guards every method that changes state.
pub const ACTION_MANAGE: &str = "org.binfmtd1.manage";

/// A boxed future, so that [`Authorizer`] stays object safe.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// One authorization question: may the sender of this message perform `action`?
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The header of the method call; its sender is the polkit subject.
    pub header: &'a Header<'a>,
    pub action: &'a str,
    /// The method's `interactive` argument, or the message's ALLOW_INTERACTIVE_AUTH flag.
    pub interactive: bool,
}

impl<'a> AuthRequest<'a> {
    /// Builds a request; `interactive` is also true when the caller set the header flag.
    pub fn new(header: &'a Header<'a>, action: &'a str, interactive: bool) -> Self {
        let flagged = header
            .primary()
            .flags()
            .contains(Flags::ALLOW_INTERACTIVE_AUTH);
        AuthRequest {
            header,
            action,
            interactive: interactive || flagged,
        }
    }
}

/// Decides whether a caller may change state. `Ok(())` allows.
pub trait Authorizer: Send + Sync {
    fn authorize<'a>(&'a self, request: AuthRequest<'a>) -> AuthFuture<'a>;
}

/// What polkit answered, reduced to what the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolkitAnswer {
    /// Nobody owns org.freedesktop.PolicyKit1 and it cannot be activated.
    Absent(String),
    /// polkit is there but the call failed.
    Failed(String),
    Answered {
        authorized: bool,
        challenge: bool,
        dismissed: bool,
    },
}

/// Pure rule 1: uid 0 is always allowed; an unknown uid never is.
pub fn by_uid(uid: Option<u32>) -> bool {
    uid == Some(0)
}

/// Pure rule 2: turns polkit's answer into allow or a typed error that says what to do.
pub fn from_polkit(answer: &PolkitAnswer, action: &str, interactive: bool) -> Result<(), Error> {
    match answer {
        PolkitAnswer::Answered {
            authorized: true, ..
        } => Ok(()),
        PolkitAnswer::Answered {
            dismissed: true, ..
        } => Err(Error::AccessDenied(format!(
            "authentication for {action} was dismissed; run the command again and authenticate, or run it as root"
        ))),
        PolkitAnswer::Answered {
            challenge: true, ..
        } if !interactive => Err(Error::InteractiveAuthorizationRequired(format!(
            "{action} needs authentication; call again with interactive=true (e.g. `busctl --allow-interactive-authorization=yes`) from a session with a polkit agent, or run as root"
        ))),
        PolkitAnswer::Answered { .. } => Err(Error::AccessDenied(format!(
            "polkit does not authorize this caller for {action}; run as root or ask an administrator to grant {action} (polkit rules in /etc/polkit-1/rules.d)"
        ))),
        PolkitAnswer::Absent(why) => Err(Error::AccessDenied(format!(
            "only root may do this while polkit is not available ({why}); run as root, or install and start polkit to delegate {action}"
        ))),
        PolkitAnswer::Failed(why) => Err(Error::AccessDenied(format!(
            "polkit could not check {action} ({why}); run as root or fix polkit (see `journalctl -u polkit`)"
        ))),
    }
}

/// The real authorizer: asks the bus for the caller's uid, then polkit.
#[derive(Debug, Clone)]
pub struct BusAuthorizer {
    connection: zbus::Connection,
}

/// The caller's uid as the bus daemon saw it when the caller connected (never a uid the
/// caller claims).
pub async fn caller_uid(connection: &zbus::Connection, header: &Header<'_>) -> Option<u32> {
    let sender = header.sender()?;
    let dbus = zbus::fdo::DBusProxy::new(connection).await.ok()?;
    dbus.get_connection_unix_user(sender.clone().into())
        .await
        .ok()
}

impl BusAuthorizer {
    pub fn new(connection: zbus::Connection) -> Self {
        BusAuthorizer { connection }
    }

    async fn caller_uid(&self, header: &Header<'_>) -> Option<u32> {
        caller_uid(&self.connection, header).await
    }

    async fn ask_polkit(&self, request: AuthRequest<'_>) -> PolkitAnswer {
        let subject = match Subject::new_for_message_header(request.header) {
            Ok(subject) => subject,
            Err(e) => return PolkitAnswer::Failed(format!("no sender on the call: {e}")),
        };
        let authority = match AuthorityProxy::new(&self.connection).await {
            Ok(proxy) => proxy,
            Err(e) => return PolkitAnswer::Absent(e.to_string()),
        };
        let flags = if request.interactive {
            CheckAuthorizationFlags::ALLOW_USER_INTERACTION
        } else {
            CheckAuthorizationFlags::empty()
        };
        let details: HashMap<&str, &str> = HashMap::new();
        match authority
            .check_authorization(&subject, request.action, &details, flags, "")
            .await
        {
            Ok(result) => PolkitAnswer::Answered {
                authorized: result.is_authorized,
                challenge: result.is_challenge,
                dismissed: result
                    .details
                    .get("polkit.dismissed")
                    .is_some_and(|v| !v.is_empty()),
            },
            Err(e) => classify_polkit_error(&e),
        }
    }
}

/// A polkit that is not on the bus is "absent"; any other failure is "failed".
fn classify_polkit_error(e: &zbus::Error) -> PolkitAnswer {
    if let zbus::Error::MethodError(name, _, _) = e {
        let name = name.as_str();
        if name == "org.freedesktop.DBus.Error.ServiceUnknown"
            || name == "org.freedesktop.DBus.Error.NameHasNoOwner"
        {
            return PolkitAnswer::Absent("org.freedesktop.PolicyKit1 is not on the bus".into());
        }
    }
    PolkitAnswer::Failed(e.to_string())
}

impl Authorizer for BusAuthorizer {
    fn authorize<'a>(&'a self, request: AuthRequest<'a>) -> AuthFuture<'a> {
        Box::pin(async move {
            if by_uid(self.caller_uid(request.header).await) {
                return Ok(());
            }
            let answer = self.ask_polkit(request).await;
            let outcome = from_polkit(&answer, request.action, request.interactive);
            if let Err(e) = &outcome {
                tracing::info!(
                    caller = ?request.header.sender().map(|s| s.to_string()),
                    action = request.action,
                    "denied: {}",
                    zbus::DBusError::description(e).unwrap_or_default()
                );
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uid_zero_passes_the_uid_rule() {
        for (uid, allowed) in [
            (Some(0), true),
            (Some(1), false),
            (Some(65534), false),
            (None, false),
        ] {
            assert_eq!(by_uid(uid), allowed, "{uid:?}");
        }
    }

    #[test]
    fn polkit_answers_map_to_allow_or_typed_errors() {
        let answered = |authorized, challenge, dismissed| PolkitAnswer::Answered {
            authorized,
            challenge,
            dismissed,
        };
        // (answer, interactive, expected error name or None for allowed)
        let cases = [
            (answered(true, false, false), false, None),
            (answered(true, false, false), true, None),
            (
                answered(false, true, false),
                false,
                Some("InteractiveAuthorizationRequired"),
            ),
            (answered(false, true, false), true, Some("AccessDenied")),
            (answered(false, false, false), false, Some("AccessDenied")),
            (answered(false, false, true), true, Some("AccessDenied")),
            (
                PolkitAnswer::Absent("gone".into()),
                true,
                Some("AccessDenied"),
            ),
            (
                PolkitAnswer::Failed("boom".into()),
                false,
                Some("AccessDenied"),
            ),
        ];
        for (answer, interactive, expected) in cases {
            let got = from_polkit(&answer, ACTION_MANAGE, interactive);
            match (expected, got) {
                (None, Ok(())) => {}
                (Some(name), Err(e)) => {
                    assert_eq!(
                        e.dbus_name(),
                        format!("org.binfmtd1.Error.{name}"),
                        "{answer:?}"
                    );
                    let text = zbus::DBusError::description(&e).unwrap_or_default();
                    assert!(
                        text.contains(ACTION_MANAGE) || text.contains("root"),
                        "{text}"
                    );
                }
                (expected, got) => panic!(
                    "{answer:?} interactive={interactive}: expected {expected:?}, got {got:?}"
                ),
            }
        }
    }

    #[test]
    fn absent_polkit_message_tells_what_to_do() {
        let e = from_polkit(&PolkitAnswer::Absent("x".into()), ACTION_MANAGE, false).unwrap_err();
        let text = zbus::DBusError::description(&e)
            .unwrap_or_default()
            .to_string();
        assert!(text.contains("run as root"), "{text}");
        assert!(text.contains("polkit"), "{text}");
    }
}
