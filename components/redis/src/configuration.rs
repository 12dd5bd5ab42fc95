//! `configuration.redis`: each item a Redis string `value||version` (or a
//! bare value with no version), as daprd reads them. Subscriptions listen
//! to keyspace notifications (`__keyspace@{db}__:{key}`), one per key or a
//! pattern for every key, and read the key again on each one; a deleted key
//! is an item with an empty value and version.
//!
//! Where Mecha differs: the component adds the notification classes it
//! needs (`Kg$xe`) to the server's `notify-keyspace-events` instead of
//! replacing what is there; reading every key uses `SCAN`, not `KEYS`; a
//! subscription survives a lost connection (it reconnects, listens again,
//! and hands the current value of its keys, so a change made meanwhile is
//! not lost).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use mecha_configuration::*;
use mecha_core::ComponentFactory;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// The notification classes a subscription needs: keyspace events (K) of
/// generic commands (g: del, expire, rename), strings ($), expiries (x)
/// and evictions (e).
const NEEDED_EVENTS: &str = "Kg$xe";

pub const CONFIGURATION_REDIS: ComponentFactory<dyn ConfigurationStore, Settings> =
    ComponentFactory::new(
        "configuration.redis",
        |_, metadata, _| Settings::from_metadata(metadata),
        |settings| Box::pin(connect(settings)),
    );

async fn connect(settings: Settings) -> anyhow::Result<Arc<dyn ConfigurationStore>> {
    Ok(Arc::new(RedisConfigurationStore::connect(settings).await?))
}

/// The `configuration.redis` store.
pub struct RedisConfigurationStore {
    client: redis::Client,
    commands: ConnectionManager,
    db: i64,
}

fn backend(what: &str, err: redis::RedisError) -> ConfigError {
    ConfigError::Backend(anyhow::anyhow!("redis {what}: {err}"))
}

/// `value||version`: the value and version; a bare value has no version.
pub fn parse_item(text: &str) -> Item {
    let mut parts = text.split("||");
    Item {
        value: parts.next().unwrap_or_default().to_owned(),
        version: parts.next().unwrap_or_default().to_owned(),
        metadata: BTreeMap::new(),
    }
}

/// The flags to set so that `current` has the needed classes too (`A` is
/// every class but keyspace/keyevent and key-miss).
fn merged_events(current: &str) -> Option<String> {
    let covered = |flag: char| current.contains(flag) || (flag != 'K' && current.contains('A'));
    let missing: String = NEEDED_EVENTS.chars().filter(|f| !covered(*f)).collect();
    (!missing.is_empty()).then(|| format!("{current}{missing}"))
}

impl RedisConfigurationStore {
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let (client, commands) = settings.connect().await?;
        Ok(Self {
            client,
            commands,
            db: settings.db,
        })
    }

    async fn read(&self, keys: &[String]) -> Result<Items, ConfigError> {
        if keys.is_empty() {
            return Ok(Items::new());
        }
        // MGET answers nil for missing keys and for keys of other types; a
        // value that is not UTF-8 (another program's bytes) is read lossily
        // rather than failing the whole read.
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.commands.clone())
            .await
            .map_err(|err| backend("MGET", err))?;
        Ok(keys
            .iter()
            .zip(values)
            .filter_map(|(key, value)| {
                Some((key.clone(), parse_item(&String::from_utf8_lossy(&value?))))
            })
            .collect())
    }

    async fn every_key(&self) -> Result<Vec<String>, ConfigError> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.commands.clone())
                .await
                .map_err(|err| backend("SCAN", err))?;
            // A configuration key is text: binary keys are not items.
            keys.extend(batch.into_iter().filter_map(|k| String::from_utf8(k).ok()));
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Adds the notification classes subscriptions need to the server's.
    async fn enable_notifications(&self) {
        let mut commands = self.commands.clone();
        let current: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events")
            .query_async(&mut commands)
            .await;
        let current = match current {
            Ok(pair) => pair.get(1).cloned().unwrap_or_default(),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read notify-keyspace-events; configuration changes need it to include {NEEDED_EVENTS}");
                return;
            }
        };
        if let Some(flags) = merged_events(&current) {
            let set: redis::RedisResult<()> = redis::cmd("CONFIG")
                .arg("SET")
                .arg("notify-keyspace-events")
                .arg(&flags)
                .query_async(&mut commands)
                .await;
            if let Err(err) = set {
                tracing::warn!(error = %err, "cannot set notify-keyspace-events to {flags}; configuration changes will not be seen");
            }
        }
    }

    /// A pub/sub connection listening for the keys (or every key).
    async fn listen(&self, keys: &[String]) -> redis::RedisResult<redis::aio::PubSub> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        let prefix = format!("__keyspace@{}__:", self.db);
        if keys.is_empty() {
            pubsub.psubscribe(format!("{prefix}*")).await?;
        } else {
            for key in keys {
                pubsub.subscribe(format!("{prefix}{key}")).await?;
            }
        }
        Ok(pubsub)
    }
}

#[async_trait]
impl ConfigurationStore for RedisConfigurationStore {
    async fn get(&self, keys: &[String], _metadata: &Metadata) -> Result<Items, ConfigError> {
        if keys.is_empty() {
            let keys = self.every_key().await?;
            return self.read(&keys).await;
        }
        self.read(keys).await
    }

    async fn watch(
        &self,
        subscription_id: &str,
        keys: &[String],
        _metadata: &Metadata,
        handler: Arc<dyn UpdateHandler>,
        stop: CancellationToken,
    ) -> Result<(), ConfigError> {
        self.enable_notifications().await;
        let first = self
            .listen(keys)
            .await
            .map_err(|err| backend("SUBSCRIBE", err))?;
        let store = Self {
            client: self.client.clone(),
            commands: self.commands.clone(),
            db: self.db,
        };
        let (id, keys) = (subscription_id.to_owned(), keys.to_vec());
        tokio::spawn(async move { store.follow(first, id, keys, handler, stop).await });
        Ok(())
    }
}

impl RedisConfigurationStore {
    /// Hands each notified key's new item to the handler until stopped,
    /// reconnecting when the connection is lost.
    async fn follow(
        &self,
        mut pubsub: redis::aio::PubSub,
        id: String,
        keys: Vec<String>,
        handler: Arc<dyn UpdateHandler>,
        stop: CancellationToken,
    ) {
        let prefix = format!("__keyspace@{}__:", self.db);
        loop {
            {
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        _ = stop.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let Some(key) = message.get_channel_name().strip_prefix(&prefix) else {
                        continue;
                    };
                    let key = key.to_owned();
                    match self.read(std::slice::from_ref(&key)).await {
                        Ok(mut items) => {
                            let item = items.remove(&key).unwrap_or_default();
                            handler.update(&id, [(key, item)].into()).await;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, key, "cannot read a changed configuration item")
                        }
                    }
                }
            }
            // The connection is gone: listen again, then hand the current
            // items of the keys, in case they changed meanwhile.
            let mut wait = Duration::from_millis(100);
            pubsub = loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                match self.listen(&keys).await {
                    Ok(pubsub) => break pubsub,
                    Err(err) => {
                        tracing::warn!(error = %err, "configuration subscription: cannot reconnect to Redis");
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            };
            if !keys.is_empty()
                && let Ok(found) = self.read(&keys).await
            {
                let items = keys
                    .iter()
                    .map(|k| (k.clone(), found.get(k).cloned().unwrap_or_default()))
                    .collect();
                handler.update(&id, items).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_and_flags() {
        assert_eq!(
            parse_item("v||3"),
            Item {
                value: "v".into(),
                version: "3".into(),
                metadata: BTreeMap::new()
            }
        );
        assert_eq!(parse_item("v").version, "");
        assert_eq!(parse_item("a||b||c").value, "a");
        assert_eq!(merged_events(""), Some("Kg$xe".into()));
        assert_eq!(merged_events("KEA"), None);
        assert_eq!(merged_events("Ex"), Some("ExKg$e".into()));
    }
}
