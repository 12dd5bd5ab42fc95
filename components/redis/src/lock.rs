//! `lock.redis`: a lock is a key holding its owner, set with `SET NX PX`
//! so it expires by itself; unlock is a Lua script that deletes the key
//! only for its owner, as daprd's. Like daprd, the component refuses a
//! Redis with replicas: a failover could hand one lock to two owners.

use std::sync::Arc;

use async_trait::async_trait;
use mecha_core::ComponentFactory;
use mecha_lock::*;
use redis::Script;
use redis::aio::ConnectionManager;

use crate::settings::Settings;

/// -1: no such lock; -2: someone else's; otherwise deleted.
const UNLOCK: &str = r#"
local owner = redis.call("GET", KEYS[1])
if owner == false then return -1 end
if owner ~= ARGV[1] then return -2 end
return redis.call("DEL", KEYS[1])
"#;

pub const LOCK_REDIS: ComponentFactory<dyn LockStore, Settings> = ComponentFactory::new(
    "lock.redis",
    |_, metadata, _| Settings::from_metadata(metadata),
    |settings| Box::pin(connect(settings)),
);

async fn connect(settings: Settings) -> anyhow::Result<Arc<dyn LockStore>> {
    Ok(Arc::new(RedisLockStore::connect(settings).await?))
}

/// The `lock.redis` store.
pub struct RedisLockStore {
    commands: ConnectionManager,
    unlock: Script,
}

fn backend(what: &str, err: redis::RedisError) -> LockError {
    LockError::Backend(anyhow::anyhow!("redis {what}: {err}"))
}

impl RedisLockStore {
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let (_, mut commands) = settings.connect().await?;
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut commands)
            .await
            .map_err(|err| anyhow::anyhow!("redis INFO replication: {err}"))?;
        let replicas = info
            .lines()
            .find_map(|line| line.strip_prefix("connected_slaves:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        anyhow::ensure!(
            replicas == 0,
            "lock.redis needs a Redis without replicas (this one has {replicas}): a failover could give one lock to two owners"
        );
        Ok(Self {
            commands,
            unlock: Script::new(UNLOCK),
        })
    }
}

#[async_trait]
impl LockStore for RedisLockStore {
    async fn try_lock(&self, req: &TryLockRequest) -> Result<bool, LockError> {
        let taken: Option<String> = redis::cmd("SET")
            .arg(&req.key)
            .arg(&req.owner)
            .arg("PX")
            .arg(req.expiry.as_millis().max(1) as u64)
            .arg("NX")
            .query_async(&mut self.commands.clone())
            .await
            .map_err(|err| backend("SET NX", err))?;
        Ok(taken.is_some())
    }

    async fn unlock(&self, req: &UnlockRequest) -> Result<UnlockStatus, LockError> {
        let result: i64 = self
            .unlock
            .key(&req.key)
            .arg(&req.owner)
            .invoke_async(&mut self.commands.clone())
            .await
            .map_err(|err| backend("unlock", err))?;
        Ok(match result {
            -1 => UnlockStatus::LockDoesNotExist,
            -2 => UnlockStatus::LockBelongsToOthers,
            n if n >= 0 => UnlockStatus::Success,
            _ => UnlockStatus::InternalError,
        })
    }
}
