//! Service tests over an in-memory backend: the no-op fast path, serialized changes, Doctor
//! slots that stay taken while a worker runs, and change detection.

use super::*;
use crate::daemon::backend::HandlerView;
use crate::engine::{InstallOptions, Origin};
use crate::persist::desired::{InstallSpec, Recorded};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A backend whose "kernel" is a list of handler names; Doctor blocks until released.
#[derive(Default)]
struct Fake {
    installed: Mutex<Vec<String>>,
    record: Mutex<Recorded>,
    installs: AtomicUsize,
    release: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Backend for Fake {
    fn observe(&self) -> Result<Observed, ServiceError> {
        let handlers = self.installed.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Observed {
            mounted: true,
            global_status: "enabled".into(),
            handlers: handlers
                .iter()
                .map(|n| HandlerView {
                    name: n.clone(),
                    platform: format!("linux/{n}"),
                    enabled: true,
                    owner: "binfmtd".into(),
                    wins: true,
                    ..HandlerView::default()
                })
                .collect(),
            ..Observed::default()
        })
    }
    fn select(&self, words: &[String]) -> Result<Selection, ServiceError> {
        Ok(Selection::Handlers(words.to_vec()))
    }
    fn install(&self, req: &InstallRequest) -> Result<Vec<Item>, ServiceError> {
        self.installs.fetch_add(1, Ordering::SeqCst);
        let Selection::Handlers(h) = &req.selection else {
            return Ok(vec![]);
        };
        let mut installed = self.installed.lock().unwrap_or_else(|p| p.into_inner());
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        Ok(h.iter()
            .map(|n| {
                installed.push(n.clone());
                record.install(n, &req.options.spec_for(None));
                Item {
                    platform: format!("linux/{n}"),
                    handler: n.clone(),
                    outcome: Outcome::Installed,
                    message: "registered".into(),
                }
            })
            .collect())
    }
    fn change(&self, _req: &EntriesRequest) -> Result<Vec<Item>, ServiceError> {
        Ok(vec![])
    }
    fn reconcile(
        &self,
        _skip: &std::collections::BTreeSet<String>,
    ) -> Result<crate::engine::Kept, ServiceError> {
        Ok(crate::engine::Kept::default())
    }
    fn doctor(&self, _fd: std::os::fd::OwnedFd, name: &str) -> Result<String, ServiceError> {
        let rx = self
            .release
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(rx) = rx {
            let _ = rx.recv();
        }
        Ok(format!("{{\"name\":{name:?}}}"))
    }
    fn recorded(&self) -> Option<Recorded> {
        Some(
            self.record
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
    fn list_emulated(
        &self,
        _viewer: crate::procs::Viewer,
        _window: Duration,
    ) -> Result<crate::procs::Report, ServiceError> {
        Err(ServiceError::Failed("not in this test".into()))
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn install_req(name: &str) -> InstallRequest {
    InstallRequest {
        selection: Selection::Handlers(vec![name.into()]),
        options: InstallOptions::default(),
        dry_run: false,
        origin: Origin::Request,
    }
}

#[test]
fn a_repeated_install_is_answered_without_the_backend() {
    let fake = Arc::new(Fake::default());
    let service = Service::new(fake.clone());
    rt().block_on(async {
        let (items, change) = service
            .install(install_req("qemu-aarch64"))
            .await
            .expect("install");
        assert_eq!(items[0].outcome, Outcome::Installed);
        assert!(change.handlers);
        let (items, change) = service
            .install(install_req("qemu-aarch64"))
            .await
            .expect("again");
        assert_eq!(items[0].outcome, Outcome::Unchanged);
        assert!(!change.any());
        // Other options (force, other flags) take the full path through the engine.
        let mut forced = install_req("qemu-aarch64");
        forced.options.policy.force = true;
        service.install(forced).await.expect("forced");
    });
    assert_eq!(fake.installs.load(Ordering::SeqCst), 2);
    // A recorded spec that differs from the request is not a no-op.
    fake.record
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .install(
            "qemu-aarch64",
            &InstallSpec {
                flags: Some("OCF".into()),
                ..InstallSpec::default()
            },
        );
    rt().block_on(async {
        service
            .install(install_req("qemu-aarch64"))
            .await
            .expect("install");
    });
    assert_eq!(fake.installs.load(Ordering::SeqCst), 3);
}

/// Waits (bounded) until `n` Doctor slots are free.
async fn settle(service: &Service, n: usize) {
    for _ in 0..200 {
        if service.doctor_slots.available_permits() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn doctor_slots_stay_taken_until_the_worker_ends() {
    let fake = Arc::new(Fake::default());
    let (tx, rx) = std::sync::mpsc::channel();
    *fake.release.lock().unwrap_or_else(|p| p.into_inner()) = Some(rx);
    let service = Service::with_doctor_timeout(fake.clone(), Duration::from_millis(50));
    let fd = || {
        std::fs::File::open("/dev/null")
            .expect("open /dev/null")
            .into()
    };
    rt().block_on(async {
        // The first call hangs in the backend and times out for its caller...
        let first = service.doctor(fd(), "hung".into()).await;
        assert!(matches!(first, Err(ServiceError::Failed(ref m)) if m.contains("did not finish")));
        // ...but its worker still runs and holds its slot: only DOCTOR_SLOTS - 1 remain.
        for _ in 1..DOCTOR_SLOTS {
            service
                .doctor(fd(), "ok".into())
                .await
                .expect("a free slot");
        }
        // (a finished worker gives its slot back as its thread ends, just after replying)
        settle(&service, DOCTOR_SLOTS - 1).await;
        assert_eq!(service.doctor_slots.available_permits(), DOCTOR_SLOTS - 1);
        tx.send(()).expect("release the hung worker");
        settle(&service, DOCTOR_SLOTS).await;
        assert_eq!(service.doctor_slots.available_permits(), DOCTOR_SLOTS);
    });
}

#[test]
fn doctor_refuses_when_every_slot_is_hung() {
    let fake = Arc::new(Fake::default());
    let (_tx, rx) = std::sync::mpsc::channel::<()>();
    *fake.release.lock().unwrap_or_else(|p| p.into_inner()) = Some(rx);
    let service = Service::with_doctor_timeout(fake, Duration::from_millis(20));
    let fd = || {
        std::fs::File::open("/dev/null")
            .expect("open /dev/null")
            .into()
    };
    rt().block_on(async {
        let _ = service.doctor(fd(), "hung".into()).await;
        // Take the remaining slots permanently, as further hung calls would.
        let held = Arc::clone(&service.doctor_slots)
            .try_acquire_many_owned((DOCTOR_SLOTS - 1) as u32)
            .expect("remaining slots");
        let busy = service.doctor(fd(), "more".into()).await;
        assert!(matches!(busy, Err(ServiceError::Busy(_))), "{busy:?}");
        drop(held);
    });
}

#[test]
fn change_detection_table() {
    let base = Observed::default();
    let mut handlers = base.clone();
    handlers.handlers.push(HandlerView {
        name: "x".into(),
        ..HandlerView::default()
    });
    let mut mounted = base.clone();
    mounted.mounted = true;
    let mut status = base.clone();
    status.global_status = "disabled".into();
    let mut host = base.clone();
    host.native_platforms.push("linux/386".into());
    let only = |f: fn(&mut Change)| {
        let mut c = Change::default();
        f(&mut c);
        c
    };
    let cases = [
        (&base, Change::default()),
        (&handlers, only(|c| c.handlers = true)),
        (&mounted, only(|c| c.mounted = true)),
        (&status, only(|c| c.global_status = true)),
        (&host, only(|c| c.host = true)),
    ];
    for (new, expected) in cases {
        assert_eq!(Change::between(&base, new), expected);
    }
}
