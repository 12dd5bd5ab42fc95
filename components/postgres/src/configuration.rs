//! `configuration.postgresql`: items in a table of daprd's documented
//! layout (`KEY`, `VALUE`, `VERSION`, `METADATA` JSON), changes through
//! `LISTEN`/`NOTIFY` on the channel a subscription names in its metadata
//! (`pgNotifyChannel`).
//!
//! Where Mecha differs: the table is created when missing (daprd refuses to
//! start); a subscription creates the trigger that notifies its channel
//! unless one already does (daprd's docs ask the operator to write it), and
//! Mecha's trigger sends only the key, so no value is too large for
//! `NOTIFY`; on each notification the component reads the key again, so
//! every update is the row as it is (a deleted key is an empty item, where
//! daprd hands the deleted row's old value), whatever trigger sent it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mecha_configuration::*;
use mecha_core::{ComponentFactory, MetadataReader};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};
use tokio_util::sync::CancellationToken;

use crate::conninfo;

/// The typed configuration of a `configuration.postgresql` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgConfigurationConfig {
    pub connection_string: String,
    pub table: String,
    pub timeout: Duration,
}

fn valid_table(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '.')
}

impl PgConfigurationConfig {
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let seconds = Duration::from_secs(1);
        let connection_string = conninfo::from_metadata(meta);
        let table = meta.required("table");
        if !table.is_empty() && !valid_table(&table) {
            meta.error(format!(
                "invalid table name '{table}'. non-alphanumerics or upper cased table names are not supported"
            ));
        }
        for tuning in [
            "maxConns",
            "connectionMaxIdleTime",
            "connMaxIdleTime",
            "queryExecMode",
        ] {
            let _ = meta.string(tuning);
        }
        let timeout = meta
            .optional_duration("timeout", seconds)
            .or_else(|| meta.optional_duration("timeoutInSeconds", seconds))
            .unwrap_or(Duration::from_secs(20));
        Self {
            connection_string,
            table,
            timeout,
        }
    }
}

pub const CONFIGURATION_POSTGRESQL: ComponentFactory<
    dyn ConfigurationStore,
    PgConfigurationConfig,
> = ComponentFactory::new(
    "configuration.postgresql",
    |_, metadata, _| PgConfigurationConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: PgConfigurationConfig) -> anyhow::Result<Arc<dyn ConfigurationStore>> {
    Ok(Arc::new(PgConfigurationStore::open(config).await?))
}

/// The `configuration.postgresql` store.
pub struct PgConfigurationStore {
    pool: PgPool,
    config: PgConfigurationConfig,
}

fn backend(err: impl std::fmt::Display) -> ConfigError {
    ConfigError::Backend(anyhow::anyhow!("postgresql: {err}"))
}

/// A name for SQL built from a table and a channel: letters, digits, `_`.
fn sql_name(parts: &[&str]) -> String {
    parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl PgConfigurationStore {
    pub async fn open(config: PgConfigurationConfig) -> anyhow::Result<Self> {
        let info = conninfo::parse(&config.connection_string).map_err(anyhow::Error::msg)?;
        let pool = PgPoolOptions::new()
            .max_connections(info.pool.max_connections.unwrap_or(4))
            .acquire_timeout(config.timeout)
            .connect_lazy_with(info.options);
        let table = &config.table;
        tokio::time::timeout(
            config.timeout,
            sqlx::query(AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS {table} (KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL, \
                 VERSION VARCHAR NOT NULL, METADATA JSON)"
            )))
            .execute(&pool),
        )
        .await
        .map_err(|_| anyhow::anyhow!("postgresql: no answer within {:?}", config.timeout))??;
        Ok(Self { pool, config })
    }

    async fn read(&self, keys: Option<&[String]>) -> Result<Items, ConfigError> {
        let table = &self.config.table;
        let select = format!("SELECT key, value, version, metadata::text FROM {table}");
        let query = match keys {
            Some(keys) => sqlx::query(AssertSqlSafe(format!("{select} WHERE key = ANY($1)")))
                .bind(keys.to_vec()),
            None => sqlx::query(AssertSqlSafe(select)),
        };
        let rows = tokio::time::timeout(self.config.timeout, query.fetch_all(&self.pool))
            .await
            .map_err(|_| backend("query timed out"))?
            .map_err(backend)?;
        let mut items = Items::new();
        for row in rows {
            let key: String = row.try_get(0).map_err(backend)?;
            let metadata: Option<String> = row.try_get(3).map_err(backend)?;
            let metadata: BTreeMap<String, String> = metadata
                .and_then(|text| {
                    serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&text).ok()
                })
                .map(|map| {
                    map.into_iter()
                        .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                        .collect()
                })
                .unwrap_or_default();
            let item = Item {
                value: row.try_get(1).map_err(backend)?,
                version: row.try_get(2).map_err(backend)?,
                metadata,
            };
            // Several rows of one key: the highest numeric version wins.
            let number = |version: &str| version.parse::<i64>().unwrap_or(-1);
            match items.get(&key) {
                Some(kept) if number(&kept.version) >= number(&item.version) => {}
                _ => {
                    items.insert(key, item);
                }
            }
        }
        Ok(items)
    }

    /// Creates the trigger notifying `channel` of changes, unless a trigger
    /// on the table already notifies it.
    async fn ensure_trigger(&self, channel: &str) -> Result<(), ConfigError> {
        let table = &self.config.table;
        // The function lives beside the table, in its schema.
        let (schema, bare) = match table.rsplit_once('.') {
            Some((schema, bare)) => (format!("{schema}."), bare),
            None => (String::new(), table.as_str()),
        };
        let function = format!(
            "{schema}{}",
            sql_name(&["mecha_config_notify", bare, channel])
        );
        let trigger = sql_name(&["mecha_config", channel]);
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('mecha-configuration-triggers'))")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON t.tgfoid = p.oid \
             WHERE t.tgrelid = $1::regclass AND NOT t.tgisinternal AND t.tgname <> $2 \
             AND p.prosrc LIKE '%pg_notify(''' || $3 || '''%'",
        )
        .bind(table)
        .bind(&trigger)
        .bind(channel)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if others == 0 {
            let quoted_channel = channel.replace('\'', "''");
            for statement in [
                format!(
                    "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $fn$ \
                     DECLARE row_key text; \
                     BEGIN \
                       IF (TG_OP = 'DELETE') THEN row_key = OLD.key; ELSE row_key = NEW.key; END IF; \
                       PERFORM pg_notify('{quoted_channel}', json_build_object('table', TG_TABLE_NAME, \
                         'action', TG_OP, 'data', json_build_object('key', row_key))::text); \
                       RETURN NULL; \
                     END; $fn$ LANGUAGE plpgsql"
                ),
                format!("DROP TRIGGER IF EXISTS {trigger} ON {table}"),
                format!(
                    "CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {table} \
                     FOR EACH ROW EXECUTE PROCEDURE {function}()"
                ),
            ] {
                sqlx::query(AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
        }
        tx.commit().await.map_err(backend)
    }
}

#[async_trait]
impl ConfigurationStore for PgConfigurationStore {
    async fn get(&self, keys: &[String], _metadata: &Metadata) -> Result<Items, ConfigError> {
        self.read((!keys.is_empty()).then_some(keys)).await
    }

    async fn watch(
        &self,
        subscription_id: &str,
        keys: &[String],
        metadata: &Metadata,
        handler: Arc<dyn UpdateHandler>,
        stop: CancellationToken,
    ) -> Result<(), ConfigError> {
        let channel = metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("pgNotifyChannel"))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "unable to subscribe to '{}'. pgNotifyChannel attribute cannot be empty",
                    self.config.table
                ))
            })?;
        if let Err(err) = self.ensure_trigger(&channel).await {
            tracing::warn!(error = %err, channel, "cannot create the notifying trigger; changes arrive only if one exists");
        }
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(backend)?;
        listener.listen(&channel).await.map_err(backend)?;
        let store = Self {
            pool: self.pool.clone(),
            config: self.config.clone(),
        };
        let (id, keys) = (subscription_id.to_owned(), keys.to_vec());
        tokio::spawn(async move {
            loop {
                let notification = tokio::select! {
                    _ = stop.cancelled() => break,
                    notification = listener.recv() => notification,
                };
                let notification = match notification {
                    Ok(notification) => notification,
                    Err(err) => {
                        // The listener reconnects on the next call.
                        tracing::warn!(error = %err, "configuration subscription: connection lost");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let Some(key) = changed_key(notification.payload()) else {
                    tracing::warn!(
                        payload = notification.payload(),
                        "configuration notification without a key"
                    );
                    continue;
                };
                if !keys.is_empty() && !keys.contains(&key) {
                    continue;
                }
                match store.read(Some(std::slice::from_ref(&key))).await {
                    Ok(mut items) => {
                        let item = items.remove(&key).unwrap_or_default();
                        handler.update(&id, [(key, item)].into()).await;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, key, "cannot read a changed configuration item")
                    }
                }
            }
        });
        Ok(())
    }
}

/// The key of a notification: `data.key`, in any case, as daprd's docs'
/// trigger and Mecha's send it.
fn changed_key(payload: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    let data = value.get("data")?.as_object()?;
    data.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("key"))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_notifications() {
        assert_eq!(
            changed_key(r#"{"table":"t","action":"UPDATE","data":{"key":"a","value":"1","version":"2","metadata":null}}"#).as_deref(),
            Some("a")
        );
        assert_eq!(changed_key(r#"{"data":{"KEY":"b"}}"#).as_deref(), Some("b"));
        assert_eq!(changed_key("not json"), None);
        assert!(valid_table("config.items_v2"));
        assert!(!valid_table("Config"));
        assert!(!valid_table("x; drop"));
        assert_eq!(
            sql_name(&["mecha", "public.config", "Chan"]),
            "mecha_public_config_chan"
        );
    }
}
