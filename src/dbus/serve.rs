//! The daemon's D-Bus front: connects to the bus, serves the Manager object over the
//! service, takes the well-known name, and emits change signals.

use super::auth::{Authorizer, BusAuthorizer};
use super::interface::Manager;
use super::{BUS_NAME, OBJECT_PATH};
use crate::daemon::service::{Change, Service};
use crate::daemon::{BoxFuture, Front, FrontError};
use std::sync::Arc;
use zbus::object_server::InterfaceRef;

/// Why the bus could not be used; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to the D-Bus {bus}: {source}; check that dbus is running (or set DBUS_SYSTEM_BUS_ADDRESS / --bus-address)")]
    Connect {
        bus: String,
        #[source]
        source: zbus::Error,
    },
    #[error("cannot own the bus name {BUS_NAME} on the {bus}: {source}; is another binfmtd running, and is packaging/dbus-1/system.d/org.binfmtd1.conf installed (only root may own the name)?")]
    Name {
        bus: String,
        #[source]
        source: zbus::Error,
    },
    #[error("cannot serve {OBJECT_PATH} on the {bus}: {source}")]
    Serve {
        bus: String,
        #[source]
        source: zbus::Error,
    },
    #[error("serve was called before connect")]
    NotConnected,
}

/// The D-Bus front of `binfmtd daemon`.
pub struct BusFront {
    /// A bus address, or None for the system bus (`DBUS_SYSTEM_BUS_ADDRESS` is honoured).
    address: Option<String>,
    connection: Option<zbus::Connection>,
    iface: Option<InterfaceRef<Manager>>,
}

impl BusFront {
    pub fn new(address: Option<String>) -> Self {
        BusFront {
            address,
            connection: None,
            iface: None,
        }
    }

    fn label(&self) -> String {
        self.address.clone().unwrap_or_else(|| "system bus".into())
    }

    async fn open(&mut self) -> Result<(), BusError> {
        let builder = match &self.address {
            Some(address) => zbus::connection::Builder::address(address.as_str()),
            None => zbus::connection::Builder::system(),
        };
        let connection = builder.build().await.map_err(|source| BusError::Connect {
            bus: self.label(),
            source,
        })?;
        self.connection = Some(connection);
        Ok(())
    }

    async fn start(&mut self, service: Arc<Service>) -> Result<(), BusError> {
        let bus = self.label();
        let connection = self.connection.clone().ok_or(BusError::NotConnected)?;
        let serve = |source| BusError::Serve {
            bus: bus.clone(),
            source,
        };
        let auth: Arc<dyn Authorizer> = Arc::new(BusAuthorizer::new(connection.clone()));
        connection
            .object_server()
            .at(OBJECT_PATH, Manager::new(service, auth))
            .await
            .map_err(serve)?;
        connection
            .request_name(BUS_NAME)
            .await
            .map_err(|source| BusError::Name {
                bus: bus.clone(),
                source,
            })?;
        let iface = connection
            .object_server()
            .interface::<_, Manager>(OBJECT_PATH)
            .await
            .map_err(serve)?;
        self.iface = Some(iface);
        tracing::info!("serving {BUS_NAME} at {OBJECT_PATH} on the {bus}");
        Ok(())
    }
}

impl Front for BusFront {
    fn connect(&mut self) -> BoxFuture<'_, Result<(), FrontError>> {
        Box::pin(async move { self.open().await.map_err(FrontError::from) })
    }

    fn serve(&mut self, service: Arc<Service>) -> BoxFuture<'_, Result<(), FrontError>> {
        Box::pin(async move { self.start(service).await.map_err(FrontError::from) })
    }

    fn announce(&self, change: Change) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(iface) = &self.iface else { return };
            let manager = iface.get().await;
            if let Err(e) = manager.announce(change, iface.signal_emitter()).await {
                tracing::warn!("cannot emit change signals: {e}");
            }
        })
    }
}
