//! The committed docs/org.binfmtd1.Manager.xml is the live service's introspection data.
//! Regenerate it with `BINFMTD_BLESS=1 cargo test --test dbus_introspect`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

const HEADER: &str = r#"<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<!-- org.binfmtd1.Manager at /org/binfmtd1 on the system bus, name org.binfmtd1.
     Generated from the running daemon by tests/dbus_introspect.rs (BINFMTD_BLESS=1);
     do not edit by hand. See docs/dbus.md. -->
<node>
"#;

/// The `<interface name="org.binfmtd1.Manager">` element of an introspection document.
fn manager_interface(xml: &str) -> Option<String> {
    let start = xml.find(r#"<interface name="org.binfmtd1.Manager">"#)?;
    let end = start + xml[start..].find("</interface>")? + "</interface>".len();
    // Re-indent each line by its own trimmed content to be robust to the server's indent.
    let body: Vec<String> = xml[start..end]
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect();
    Some(body.join("\n"))
}

#[test]
fn committed_introspection_xml_matches_the_live_service() {
    if !require_root() {
        return;
    }
    let bus = Bus::start("");
    let daemon = Daemon::start(&bus, &bus.dir.path().join("d"));
    let out = bus.busctl(
        None,
        &[
            "introspect",
            "--xml-interface",
            "org.binfmtd1",
            "/org/binfmtd1",
        ],
    );
    assert!(out.status.success(), "{}\n{}", text(&out), daemon.log());
    let live = manager_interface(&String::from_utf8_lossy(&out.stdout))
        .expect("interface in introspection");
    let generated = format!("{HEADER}{live}\n</node>\n");
    let path = repo().join("docs/org.binfmtd1.Manager.xml");
    if std::env::var_os("BINFMTD_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed, generated,
        "docs/org.binfmtd1.Manager.xml differs from the live service; regenerate with BINFMTD_BLESS=1 cargo test --test dbus_introspect"
    );
    // And it is the interface the one proxy definition talks to.
    for member in [
        "Install",
        "Uninstall",
        "Enable",
        "Disable",
        "Reconcile",
        "Doctor",
        "HandlersChanged",
        "Handlers",
        "HostArchitecture",
        "NativePlatforms",
        "SupportedPlatforms",
        "BinfmtMiscMounted",
        "GlobalStatus",
        "Version",
    ] {
        assert!(
            committed.contains(&format!("name=\"{member}\"")),
            "{member} missing"
        );
    }
    assert!(
        committed.contains(r#"type="a(ssssbsb)""#),
        "Handlers signature"
    );
}
