//! The AMQP connection a component shares between its channels, made
//! again on first use after it was lost.

use std::sync::Arc;

use lapin::types::{LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

pub(crate) struct Connector {
    url: String,
    /// The connection's name, as the broker shows it.
    name: Option<String>,
    slot: Mutex<Option<Arc<Connection>>>,
}

impl Connector {
    pub(crate) fn new(url: String, name: Option<String>) -> Self {
        Self {
            url,
            name,
            slot: Mutex::new(None),
        }
    }

    /// The live connection, connecting when there is none.
    pub(crate) async fn get(&self) -> anyhow::Result<Arc<Connection>> {
        let mut slot = self.slot.lock().await;
        if let Some(connection) = slot.as_ref()
            && connection.status().connected()
        {
            return Ok(connection.clone());
        }
        let mut properties = ConnectionProperties::default();
        if let Some(name) = &self.name {
            properties = properties.with_connection_name(LongString::from(name.as_str()));
        }
        let connection = Connection::connect(&self.url, properties)
            .await
            .map_err(|err| anyhow::anyhow!("cannot connect to RabbitMQ: {err}"))?;
        let connection = Arc::new(connection);
        *slot = Some(connection.clone());
        Ok(connection)
    }

    pub(crate) async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(self.get().await?.create_channel().await?)
    }

    /// Closes the connection, if there is one.
    pub(crate) async fn close(&self) {
        if let Some(connection) = self.slot.lock().await.take() {
            let _ = connection.close(200, ShortString::from("closing")).await;
        }
    }
}
