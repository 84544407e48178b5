//! Client side for the CLI: reach the daemon over the system bus when it is there.

use super::proxy::ManagerProxy;
use super::BUS_NAME;

/// Connects to the system bus (honouring `DBUS_SYSTEM_BUS_ADDRESS`) and returns a proxy when
/// `org.binfmtd1` is owned or activatable; `None` when there is no bus or no daemon, so the
/// caller falls back to acting directly. Call it after argument parsing, inside a tokio runtime.
pub async fn try_connect() -> Option<ManagerProxy<'static>> {
    let connection = zbus::Connection::system().await.ok()?;
    connect_on(&connection).await
}

/// Like [`try_connect`] on a given connection (tests use private buses).
pub async fn connect_on(connection: &zbus::Connection) -> Option<ManagerProxy<'static>> {
    let dbus = zbus::fdo::DBusProxy::new(connection).await.ok()?;
    let name = zbus::names::BusName::try_from(BUS_NAME).ok()?;
    let owned = dbus.name_has_owner(name.clone()).await.unwrap_or(false);
    let activatable = || async {
        dbus.list_activatable_names()
            .await
            .map(|names| names.iter().any(|n| n.as_str() == BUS_NAME))
            .unwrap_or(false)
    };
    if !owned && !activatable().await {
        return None;
    }
    ManagerProxy::new(connection).await.ok()
}

/// A blocking convenience for synchronous callers: builds a current-thread runtime, connects,
/// and hands back both (keep the runtime to drive calls with `runtime.block_on(...)`).
pub fn try_connect_blocking() -> Option<(tokio::runtime::Runtime, ManagerProxy<'static>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let proxy = runtime.block_on(try_connect())?;
    Some((runtime, proxy))
}
