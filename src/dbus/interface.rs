//! The server side of org.binfmtd1.Manager: thin adapters that parse the wire arguments once
//! into engine requests, hand them to the daemon's service and turn outcomes into replies.

use super::auth::{AuthRequest, Authorizer, ACTION_MANAGE};
use super::errors::Error;
use super::types::{
    check_platforms, parse_install_options, parse_uninstall_options, HandlerInfo, ItemReport,
};
use crate::daemon::backend::ServiceError;
use crate::daemon::service::{Change, Service};
use crate::engine::{EntriesRequest, InstallRequest, Item, Origin};
use crate::plan::EntryOp;
use std::collections::HashMap;
use std::sync::Arc;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{interface, OwnedFd, OwnedVariant};

/// The object served at `/org/binfmtd1`.
pub struct Manager {
    engine: Arc<Service>,
    auth: Arc<dyn Authorizer>,
}

impl Manager {
    pub fn new(engine: Arc<Service>, auth: Arc<dyn Authorizer>) -> Self {
        Manager { engine, auth }
    }

    /// Parses an entry change (uninstall/enable/disable) into the engine's request.
    fn entries_request(&self, platforms: &[String], op: EntryOp) -> Result<EntriesRequest, Error> {
        check_platforms(platforms)?;
        Ok(EntriesRequest {
            selection: self.engine.select(platforms)?,
            op,
            force: false,
            dry_run: false,
        })
    }

    async fn authorize(&self, header: &Header<'_>, interactive: bool) -> Result<(), Error> {
        self.auth
            .authorize(AuthRequest::new(header, ACTION_MANAGE, interactive))
            .await
    }

    /// Emits PropertiesChanged for what changed, and HandlersChanged when handlers did.
    pub async fn announce(&self, change: Change, emitter: &SignalEmitter<'_>) -> zbus::Result<()> {
        if change.host {
            self.host_architecture_changed(emitter).await?;
            self.native_platforms_changed(emitter).await?;
            self.supported_platforms_changed(emitter).await?;
        }
        if change.mounted {
            self.binfmt_misc_mounted_changed(emitter).await?;
        }
        if change.global_status {
            self.global_status_changed(emitter).await?;
        }
        if change.handlers {
            self.handlers_changed(emitter).await?;
            let handlers = self
                .engine
                .with_view(|v| v.handlers.iter().map(HandlerInfo::from).collect());
            Manager::handlers_changed_signal(emitter, handlers).await?;
        }
        Ok(())
    }

    async fn finish(
        &self,
        result: Result<(Vec<Item>, Change), ServiceError>,
        emitter: &SignalEmitter<'_>,
    ) -> Result<Vec<ItemReport>, Error> {
        let (items, change) = result?;
        if let Err(e) = self.announce(change, emitter).await {
            tracing::warn!("cannot emit change signals: {e}");
        }
        Ok(items.into_iter().map(ItemReport::from).collect())
    }
}

#[interface(name = "org.binfmtd1.Manager")]
impl Manager {
    /// Registers handlers for the platforms (OCI platforms or handler names) and keeps them
    /// registered. Options: flags (s), force (b), persist (b), allow_dynamic (b), verify (b).
    #[zbus(out_args("report"))]
    async fn install(
        &self,
        platforms: Vec<String>,
        options: HashMap<String, OwnedVariant>,
        interactive: bool,
        #[zbus(header)] header: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<Vec<ItemReport>, Error> {
        self.authorize(&header, interactive).await?;
        check_platforms(&platforms)?;
        let req = InstallRequest {
            selection: self.engine.select(&platforms)?,
            options: parse_install_options(&options)?,
            dry_run: false,
            origin: Origin::Request,
        };
        let result = self.engine.install(req).await;
        self.finish(result, &emitter).await
    }

    /// Removes the platforms' entries that binfmtd owns (and the binfmt.d files binfmtd
    /// wrote for them) and stops keeping them. No options are defined yet.
    #[zbus(out_args("report"))]
    async fn uninstall(
        &self,
        platforms: Vec<String>,
        options: HashMap<String, OwnedVariant>,
        interactive: bool,
        #[zbus(header)] header: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<Vec<ItemReport>, Error> {
        self.authorize(&header, interactive).await?;
        parse_uninstall_options(&options)?;
        let req = self.entries_request(&platforms, EntryOp::Remove)?;
        let result = self.engine.change(req).await;
        self.finish(result, &emitter).await
    }

    /// Enables the platforms' entries that binfmtd owns.
    #[zbus(out_args("report"))]
    async fn enable(
        &self,
        platforms: Vec<String>,
        interactive: bool,
        #[zbus(header)] header: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<Vec<ItemReport>, Error> {
        self.authorize(&header, interactive).await?;
        let req = self.entries_request(&platforms, EntryOp::Enable)?;
        let result = self.engine.change(req).await;
        self.finish(result, &emitter).await
    }

    /// Disables the platforms' entries that binfmtd owns; drift repair keeps them disabled.
    #[zbus(out_args("report"))]
    async fn disable(
        &self,
        platforms: Vec<String>,
        interactive: bool,
        #[zbus(header)] header: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<Vec<ItemReport>, Error> {
        self.authorize(&header, interactive).await?;
        let req = self.entries_request(&platforms, EntryOp::Disable)?;
        let result = self.engine.change(req).await;
        self.finish(result, &emitter).await
    }

    /// Applies the desired state now (what drift repair does on its own). Needs the same
    /// authorization as the other changes, without interaction.
    #[zbus(out_args("report"))]
    async fn reconcile(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<Vec<ItemReport>, Error> {
        self.authorize(&header, false).await?;
        let result = self.engine.reconcile("Reconcile call").await;
        self.finish(result, &emitter).await
    }

    /// Diagnoses the binary behind `fd`, which the caller opened, so the daemon never opens a
    /// path for a caller who might not be allowed to read it. Option: name (s), the file name
    /// to show. Loaders and libraries are looked up in the host root. Returns the report as
    /// JSON (the `binfmtd doctor --json` schema).
    #[zbus(out_args("report_json"))]
    async fn doctor(
        &self,
        fd: OwnedFd,
        options: HashMap<String, OwnedVariant>,
    ) -> Result<String, Error> {
        super::doctor::run(fd, &options, &self.engine).await
    }

    /// Every process on the host that runs under an emulator, as `binfmtd ps --json` shows
    /// it (`binfmtd.ps/v1`), limited to the processes the caller's uid could read itself
    /// (uid 0 sees all). Option: sample (d, seconds between two samples, 0 to 10; default 0:
    /// one pass). Needs no authorization. What the daemon itself cannot see is counted in
    /// `unreadable`.
    #[zbus(out_args("report_json"))]
    async fn list_emulated(
        &self,
        options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<String, Error> {
        let window = super::types::parse_list_options(&options)?;
        let uid = super::auth::caller_uid(connection, &header)
            .await
            .ok_or_else(|| {
                Error::AccessDenied(
                    "the bus did not say who is calling; cannot decide which processes to show"
                        .into(),
                )
            })?;
        let report = self
            .engine
            .list_emulated(crate::procs::Viewer::Uid(uid), window)
            .await?;
        serde_json::to_string(&report)
            .map_err(|e| Error::Failed(format!("cannot encode the process list: {e}")))
    }

    /// Emitted after the `Handlers` property changed, with its new value.
    #[zbus(signal, name = "HandlersChanged")]
    async fn handlers_changed_signal(
        emitter: &SignalEmitter<'_>,
        handlers: Vec<HandlerInfo>,
    ) -> zbus::Result<()>;

    /// The host's CPU architecture (uname machine), e.g. `x86_64`.
    #[zbus(property)]
    fn host_architecture(&self) -> String {
        self.engine.with_view(|v| v.host_architecture.clone())
    }

    /// Platforms the host runs without emulation, e.g. `linux/amd64`.
    #[zbus(property)]
    fn native_platforms(&self) -> Vec<String> {
        self.engine.with_view(|v| v.native_platforms.clone())
    }

    /// Foreign platforms whose registered handler was verified to run.
    #[zbus(property)]
    fn supported_platforms(&self) -> Vec<String> {
        self.engine.with_view(|v| v.supported_platforms.clone())
    }

    /// Every binfmt_misc entry, newest first: (name, platform, interpreter, flags, enabled,
    /// owner, wins).
    #[zbus(property)]
    fn handlers(&self) -> Vec<HandlerInfo> {
        self.engine
            .with_view(|v| v.handlers.iter().map(HandlerInfo::from).collect())
    }

    /// Whether binfmt_misc is mounted.
    #[zbus(property)]
    fn binfmt_misc_mounted(&self) -> bool {
        self.engine.with_view(|v| v.mounted)
    }

    /// `enabled`, `disabled` (every foreign exec fails) or `not-mounted`.
    #[zbus(property)]
    fn global_status(&self) -> String {
        self.engine.with_view(|v| v.global_status.clone())
    }

    /// The daemon's version.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
}
