//! The admin's intent (`desired.toml`) written and synced in the background while the host
//! is probed and the handlers registered: a change commits only once its intent is on disk,
//! and a change that fails puts the previous record back.

use super::desired;
use super::request::{InstallRequest, Origin};
use crate::ops::{Context, OpsError};
use crate::persist::desired::{DesiredError, Recorded};
use crate::persist::StateStore;
use std::thread::{Scope, ScopedJoinHandle};

/// One change's record of intent.
pub(super) struct Recording<'s> {
    /// The record before this change: what settling starts from and reverting restores.
    pub before: Recorded,
    saving: Option<ScopedJoinHandle<'s, Result<(), DesiredError>>>,
    /// The new record is on disk (so a failed change must put `before` back).
    written: bool,
}

impl<'s> Recording<'s> {
    /// Starts writing `req`'s intent when it changes the record. Plans and the daemon's own
    /// reconciling record nothing.
    pub fn start<'e>(
        scope: &'s Scope<'s, 'e>,
        ctx: &'e Context,
        req: &InstallRequest,
    ) -> Result<Recording<'s>, OpsError> {
        if req.dry_run || req.origin != Origin::Request {
            return Ok(Recording {
                before: Recorded::default(),
                saving: None,
                written: false,
            });
        }
        let before = ctx.state.load_desired()?;
        let mut record = before.clone();
        desired::record_install(&mut record, &ctx.catalog, req);
        let store: &'e StateStore = &ctx.state;
        let saving = (record != before).then(|| scope.spawn(move || store.save_desired(&record)));
        Ok(Recording {
            before,
            saving,
            written: false,
        })
    }

    /// A recording whose write fails with `error` (tests of the failure path).
    #[cfg(test)]
    pub fn failing(scope: &'s Scope<'s, '_>, error: DesiredError) -> Recording<'s> {
        Recording {
            before: Recorded::default(),
            saving: Some(scope.spawn(move || Err(error))),
            written: false,
        }
    }

    /// Waits until the intent is on disk; its error if it could not be written.
    pub fn wait(&mut self) -> Result<(), OpsError> {
        let Some(saving) = self.saving.take() else {
            return Ok(());
        };
        match saving.join() {
            Ok(Ok(())) => {
                self.written = true;
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// After a failed change: the record as it was before, if this change wrote its own.
    pub fn revert(&mut self, store: &StateStore) {
        if self.wait().is_ok() && self.written {
            if let Err(e) = store.save_desired(&self.before) {
                tracing::warn!("cannot restore desired.toml after a failed change: {e}");
            }
            self.written = false;
        }
    }
}
