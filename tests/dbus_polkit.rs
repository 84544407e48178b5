//! The polkit path of authorization, against a stand-in for polkitd on the test bus: the
//! daemon asks with the *caller's* bus name as a `system-bus-name` subject, for action
//! org.binfmtd1.manage, and honours `interactive`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use support::*;
use zbus::{OwnedVariant, Type};

/// What the stand-in saw: (subject kind, uid behind the subject's bus name, action, flags).
type Seen = Arc<Mutex<Vec<(String, Option<u32>, String, u32)>>>;

#[derive(Serialize, Type)]
struct AuthorizationResult(bool, bool, HashMap<String, String>);

/// Answers like polkit with `auth_admin` and an agent that always succeeds: a challenge
/// without ALLOW_USER_INTERACTION, authorized with it.
struct Authority {
    seen: Seen,
}

#[zbus::interface(name = "org.freedesktop.PolicyKit1.Authority")]
impl Authority {
    async fn check_authorization(
        &self,
        subject: (String, HashMap<String, OwnedVariant>),
        action_id: String,
        _details: HashMap<String, String>,
        flags: u32,
        _cancellation_id: String,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> AuthorizationResult {
        let name: Option<String> = subject
            .1
            .get("name")
            .and_then(|v| v.downcast_ref::<String>().ok());
        let dbus = zbus::fdo::DBusProxy::new(conn).await.unwrap();
        let uid = match name {
            Some(n) => dbus
                .get_connection_unix_user(zbus::names::BusName::try_from(n).unwrap())
                .await
                .ok(),
            None => None,
        };
        self.seen
            .lock()
            .unwrap()
            .push((subject.0.clone(), uid, action_id, flags));
        let interactive = flags & 1 == 1;
        AuthorizationResult(interactive, !interactive, HashMap::new())
    }
}

const POLKIT_POLICY: &str = r#"<policy user="root"><allow own="org.freedesktop.PolicyKit1"/></policy>
  <policy context="default"><allow send_destination="org.freedesktop.PolicyKit1"/></policy>"#;

#[test]
fn polkit_is_asked_about_the_caller_and_interactive_is_honoured() {
    if !require_root() {
        return;
    }
    let bus = Bus::start(POLKIT_POLICY);
    let daemon = Daemon::start(&bus, &bus.dir.path().join("d"));
    let seen: Seen = Arc::default();
    let address = bus.address.clone();
    rt().block_on(async {
        let _polkit = zbus::connection::Builder::address(address.as_str())
            .serve_at(
                "/org/freedesktop/PolicyKit1/Authority",
                Authority {
                    seen: Arc::clone(&seen),
                },
            )
            .name("org.freedesktop.PolicyKit1")
            .build()
            .await
            .unwrap();
        let call = |interactive: &'static str| {
            let address = address.clone();
            tokio::task::spawn_blocking(move || {
                let argv: Vec<String> = [
                    "gdbus",
                    "call",
                    "--address",
                    &address,
                    "--dest",
                    "org.binfmtd1",
                    "--object-path",
                    "/org/binfmtd1",
                    "--method",
                    "org.binfmtd1.Manager.Install",
                    "['linux/arm64']",
                    "{}",
                    interactive,
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                run_as(Some(NOBODY), &argv)
            })
        };
        let before = daemon.kernel_state();
        let out = call("false").await.unwrap();
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("org.binfmtd1.Error.InteractiveAuthorizationRequired"),
            "{}",
            text(&out)
        );
        assert_eq!(daemon.kernel_state(), before);

        let out = call("true").await.unwrap();
        assert!(out.status.success(), "{}\n{}", text(&out), daemon.log());
        assert!(daemon.kernel_state().contains("== qemu-aarch64"));
    });
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (
                "system-bus-name".to_string(),
                Some(NOBODY),
                "org.binfmtd1.manage".to_string(),
                0
            ),
            (
                "system-bus-name".to_string(),
                Some(NOBODY),
                "org.binfmtd1.manage".to_string(),
                1
            ),
        ],
        "polkit must be asked about the caller's bus name (uid {NOBODY}), not the daemon's"
    );
}
