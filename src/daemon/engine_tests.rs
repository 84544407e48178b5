//! Engine tests over an in-memory backend: desired-state recording and change detection.

use super::*;
use crate::dbus::types::HandlerInfo;
use std::sync::Mutex;

/// A backend whose "kernel" is a list of installed platform words.
#[derive(Default)]
struct Fake {
    installed: Mutex<Vec<(String, bool)>>,
    calls: Mutex<Vec<String>>,
}

impl Backend for Fake {
    fn observe(&self) -> Result<Observed, Error> {
        let installed = self.installed.lock().unwrap();
        Ok(Observed {
            host_architecture: "x86_64".into(),
            mounted: true,
            global_status: "enabled".into(),
            handlers: installed
                .iter()
                .map(|(p, enabled)| HandlerInfo {
                    name: p.clone(),
                    platform: p.clone(),
                    interpreter: "/i".into(),
                    flags: "F".into(),
                    enabled: *enabled,
                    owner: "binfmtd".into(),
                    wins: true,
                })
                .collect(),
            ..Observed::default()
        })
    }
    fn install(&self, platforms: &[String], _o: &InstallOptions) -> Result<Vec<ItemReport>, Error> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("install {}", platforms.join(",")));
        let mut installed = self.installed.lock().unwrap();
        let mut out = Vec::new();
        for p in platforms {
            let outcome = if p == "bad" {
                "failed"
            } else if installed.iter().any(|(q, _)| q == p) {
                "unchanged"
            } else {
                installed.insert(0, (p.clone(), true));
                "installed"
            };
            out.push(ItemReport {
                platform: p.clone(),
                handler: p.clone(),
                outcome: outcome.into(),
                message: String::new(),
            });
        }
        Ok(out)
    }
    fn uninstall(
        &self,
        platforms: &[String],
        _o: &UninstallOptions,
    ) -> Result<Vec<ItemReport>, Error> {
        self.installed
            .lock()
            .unwrap()
            .retain(|(p, _)| !platforms.contains(p));
        Ok(vec![])
    }
    fn doctor(&self, _fd: std::os::fd::OwnedFd, name: &str) -> Result<String, Error> {
        Ok(format!("{{\"name\":{name:?}}}"))
    }
    fn set_enabled(&self, platforms: &[String], enabled: bool) -> Result<Vec<ItemReport>, Error> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("enabled={enabled} {}", platforms.join(",")));
        for (p, e) in self.installed.lock().unwrap().iter_mut() {
            if platforms.contains(p) {
                *e = enabled;
            }
        }
        Ok(vec![])
    }
}

fn engine(dir: &std::path::Path) -> (Arc<Fake>, Engine) {
    let fake = Arc::new(Fake::default());
    let places = Places {
        config_dir: dir.join("etc"),
        state_dir: dir.join("state"),
    };
    (Arc::clone(&fake), Engine::new(fake, places))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn install_records_successes_and_reports_handler_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, engine) = engine(dir.path());
    rt().block_on(async {
        let (items, change) = engine
            .install(vec!["a".into(), "bad".into()], InstallOptions::default())
            .await
            .unwrap();
        assert_eq!(items.len(), 2);
        assert!(
            change.handlers,
            "installing a new platform changes Handlers"
        );
        let rec = Recorded::load(&dir.path().join("state")).unwrap();
        assert!(rec.installed.contains_key("a"));
        assert!(
            !rec.installed.contains_key("bad"),
            "failed items are not kept"
        );
        let (_, change) = engine
            .install(vec!["a".into()], InstallOptions::default())
            .await
            .unwrap();
        assert!(!change.any(), "installing again changes nothing");
        assert_eq!(engine.view().handlers.len(), 1);

        // Drift: the kernel loses the entry; reconcile brings back what was recorded.
        fake.installed.lock().unwrap().clear();
        assert!(
            engine.refresh().await.unwrap().handlers,
            "losing the entry is a change"
        );
        let (items, change) = engine.reconcile("test").await.unwrap();
        assert!(change.handlers);
        assert_eq!(items[0].outcome, "installed");

        // Disabled platforms stay disabled through reconcile; uninstall stops keeping them.
        engine.set_enabled(vec!["a".into()], false).await.unwrap();
        engine.reconcile("test").await.unwrap();
        assert!(!engine.view().handlers[0].enabled);
        engine
            .uninstall(vec!["a".into()], UninstallOptions::default())
            .await
            .unwrap();
        fake.calls.lock().unwrap().clear();
        engine.reconcile("test").await.unwrap();
        assert!(
            fake.calls.lock().unwrap().is_empty(),
            "nothing left to keep"
        );
        assert!(engine.view().handlers.is_empty());
    });
}

#[test]
fn reconcile_applies_config_with_preferences() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/binfmtd.toml"),
        "platforms = [\"linux/amd64\", \"linux/arm64\"]\n[prefer]\n\"linux/amd64\" = \"rosetta\"\n",
    )
    .unwrap();
    let (fake, engine) = engine(dir.path());
    rt().block_on(async {
        engine.reconcile("start").await.unwrap();
    });
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls, ["install rosetta", "install linux/arm64"]);
}

#[test]
fn change_detection_table() {
    let base = Observed::default();
    let mut handlers = base.clone();
    handlers.handlers.push(HandlerInfo {
        name: "x".into(),
        platform: String::new(),
        interpreter: String::new(),
        flags: String::new(),
        enabled: true,
        owner: String::new(),
        wins: false,
    });
    let mut mounted = base.clone();
    mounted.mounted = true;
    let mut status = base.clone();
    status.global_status = "disabled".into();
    let cases = [
        (&base, Change::default()),
        (
            &handlers,
            Change {
                handlers: true,
                ..Change::default()
            },
        ),
        (
            &mounted,
            Change {
                mounted: true,
                ..Change::default()
            },
        ),
        (
            &status,
            Change {
                global_status: true,
                ..Change::default()
            },
        ),
    ];
    for (new, expected) in cases {
        assert_eq!(Change::between(&base, new), expected);
    }
    assert!(
        is_write("installed")
            && is_write("replaced")
            && !is_write("unchanged")
            && !is_write("failed")
    );
}
