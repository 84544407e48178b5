//! The one client-side definition of org.binfmtd1.Manager, shared by the CLI and the tests.

use super::types::{HandlerInfo, ItemReport};
use std::collections::HashMap;
use zbus::{proxy, Fd, Variant};

#[proxy(
    interface = "org.binfmtd1.Manager",
    default_service = "org.binfmtd1",
    default_path = "/org/binfmtd1"
)]
pub trait Manager {
    /// Registers handlers for the platforms and adds them to the desired state.
    #[zbus(allow_interactive_auth)]
    fn install(
        &self,
        platforms: &[&str],
        options: HashMap<&str, Variant<'_>>,
        interactive: bool,
    ) -> zbus::Result<Vec<ItemReport>>;

    /// Removes the platforms' entries binfmtd owns and drops them from the desired state.
    #[zbus(allow_interactive_auth)]
    fn uninstall(
        &self,
        platforms: &[&str],
        options: HashMap<&str, Variant<'_>>,
        interactive: bool,
    ) -> zbus::Result<Vec<ItemReport>>;

    /// Enables the platforms' owned entries.
    #[zbus(allow_interactive_auth)]
    fn enable(&self, platforms: &[&str], interactive: bool) -> zbus::Result<Vec<ItemReport>>;

    /// Disables the platforms' owned entries.
    #[zbus(allow_interactive_auth)]
    fn disable(&self, platforms: &[&str], interactive: bool) -> zbus::Result<Vec<ItemReport>>;

    /// Re-applies the desired state now.
    fn reconcile(&self) -> zbus::Result<Vec<ItemReport>>;

    /// Emulated processes the caller may see, as `binfmtd ps --json` shows them.
    fn list_emulated(&self, options: HashMap<&str, Variant<'_>>) -> zbus::Result<String>;

    /// Diagnoses the binary behind an open file descriptor; returns the report as JSON.
    fn doctor(&self, fd: Fd<'_>, options: HashMap<&str, Variant<'_>>) -> zbus::Result<String>;

    /// Emitted after any change of the `Handlers` property.
    /// (Named `handlers_updated` here because `receive_handlers_changed` is the property stream.)
    #[zbus(signal, name = "HandlersChanged")]
    fn handlers_updated(&self, handlers: Vec<HandlerInfo>) -> zbus::Result<()>;

    #[zbus(property)]
    fn host_architecture(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn native_platforms(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn supported_platforms(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn handlers(&self) -> zbus::Result<Vec<HandlerInfo>>;
    #[zbus(property)]
    fn binfmt_misc_mounted(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn global_status(&self) -> zbus::Result<String>;
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> zbus::Result<String>;
}
