//! `state.redis`: each key a Redis hash with the fields `data` (the value's
//! bytes) and `version` (the ETag), as daprd lays it out, so either can read
//! what the other wrote. TTL is Redis' own expiry.
//!
//! Every operation is one Lua script, so it is atomic. Where daprd differs:
//! - a transaction checks every ETag before it writes anything, so a
//!   mismatch leaves nothing applied (daprd queues scripts in `MULTI`,
//!   where the ones before a failure stay applied);
//! - an ETag on a missing key is a mismatch, and first-write refuses any
//!   existing key;
//! - a write without `ttlInSeconds` clears an earlier expiry (unless the
//!   component sets a default `ttlInSeconds`), and reads report
//!   `ttlExpireTime`;
//! - a new key's version starts at the current time in microseconds and
//!   every write moves it past the clock, so an ETag of a deleted (or
//!   expired) key never matches the key written again.
//!
//! There is no RediSearch module here, so the query API is not offered.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use mecha_core::units::format_rfc3339;
use mecha_core::{ComponentFactory, MetadataReader};
use mecha_state::*;
use redis::aio::ConnectionManager;
use redis::{Script, Value};

use crate::settings::Settings;

const FEATURES: &[Feature] = &[Feature::Etag, Feature::Transactional, Feature::Ttl];

/// The typed configuration of a `state.redis` component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisStateConfig {
    pub settings: Settings,
    /// The TTL of writes that give none (`ttlInSeconds`).
    pub default_ttl: Option<Ttl>,
}

impl RedisStateConfig {
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        let settings = Settings::from_metadata(meta);
        let default_ttl = meta.string("ttlInSeconds").and_then(|value| {
            let props: Metadata = [(TTL_METADATA_KEY.to_owned(), value)].into();
            mecha_state::parse_ttl(&props).unwrap_or_else(|err| {
                meta.error(format!("metadata field 'ttlInSeconds': {err}"));
                None
            })
        });
        if meta.string("queryIndexes").is_some() {
            tracing::warn!(
                "state.redis: queryIndexes is ignored: the query API needs RediSearch, which Mecha does not use"
            );
        }
        Self {
            settings,
            default_ttl,
        }
    }
}

pub const STATE_REDIS: ComponentFactory<dyn StateStore, RedisStateConfig> = ComponentFactory::new(
    "state.redis",
    |_, metadata, _| RedisStateConfig::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: RedisStateConfig) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(Arc::new(RedisStateStore::connect(config).await?))
}

/// Reads keys: for each key, `{kind, data, version, pttl}` where kind is 0
/// (missing), 1 (hash) or 2 (a plain string, written by something else).
const GET: &str = r#"
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call("TYPE", key)["ok"]
  if kind == "hash" then
    local fields = redis.call("HMGET", key, "data", "version")
    out[#out + 1] = 1
    out[#out + 1] = fields[1]
    out[#out + 1] = fields[2]
    out[#out + 1] = redis.call("PTTL", key)
  elseif kind == "string" then
    out[#out + 1] = 2
    out[#out + 1] = redis.call("GET", key)
    out[#out + 1] = false
    out[#out + 1] = redis.call("PTTL", key)
  else
    out[#out + 1] = 0
    out[#out + 1] = false
    out[#out + 1] = false
    out[#out + 1] = -2
  end
end
return out
"#;

/// Applies operations, all or none. KEYS are the operations' keys; ARGV
/// holds five values per operation: kind (`set` or `del`), value, etag (""
/// for none), first-write (`1` or `0`), and TTL in milliseconds (""
/// clears the expiry). Returns 0 on an ETag or first-write conflict, with
/// nothing written, else 1.
const TRANSACT: &str = r#"
local now = redis.call("TIME")
local stamp = tonumber(now[1]) * 1000000 + tonumber(now[2])
local seen = {}
local function current(key)
  local state = seen[key]
  if state == nil then
    local kind = redis.call("TYPE", key)["ok"]
    if kind == "none" then
      state = {exists = false}
    elseif kind == "hash" then
      state = {exists = true, hash = true, version = redis.call("HGET", key, "version")}
    else
      state = {exists = true, hash = false}
    end
    seen[key] = state
  end
  return state
end
local plan = {}
for i, key in ipairs(KEYS) do
  local base = (i - 1) * 5
  local kind, etag, first = ARGV[base + 1], ARGV[base + 3], ARGV[base + 4]
  local state = current(key)
  if etag ~= "" then
    if not state.exists or not state.version or state.version ~= etag then return 0 end
  elseif kind == "set" and first == "1" and state.exists then
    return 0
  end
  if kind == "set" then
    local version = tonumber(state.version or "") or 0
    version = math.max(version + 1, stamp)
    local text = string.format("%d", version)
    plan[i] = {replace = state.exists and not state.hash, version = text}
    seen[key] = {exists = true, hash = true, version = text}
  else
    plan[i] = {}
    seen[key] = {exists = false}
  end
end
for i, key in ipairs(KEYS) do
  local base = (i - 1) * 5
  if ARGV[base + 1] == "set" then
    if plan[i].replace then redis.call("DEL", key) end
    redis.call("HSET", key, "data", ARGV[base + 2], "version", plan[i].version)
    local ttl = ARGV[base + 5]
    if ttl == "" then redis.call("PERSIST", key) else redis.call("PEXPIRE", key, ttl) end
  else
    redis.call("DEL", key)
  end
end
return 1
"#;

/// The `state.redis` store.
pub struct RedisStateStore {
    commands: ConnectionManager,
    config: RedisStateConfig,
    get: Script,
    transact: Script,
}

fn backend(what: &str, err: redis::RedisError) -> StateError {
    StateError::Backend(anyhow::anyhow!("redis {what}: {err}"))
}

fn check_etag(etag: &str) -> Result<(), StateError> {
    etag.parse::<u64>()
        .map(|_| ())
        .map_err(|_| StateError::EtagInvalid(format!("'{etag}' is not an etag of this store")))
}

impl RedisStateStore {
    pub async fn connect(config: RedisStateConfig) -> anyhow::Result<Self> {
        let (_, commands) = config.settings.connect().await?;
        Ok(Self {
            commands,
            config,
            get: Script::new(GET),
            transact: Script::new(TRANSACT),
        })
    }

    fn ttl_arg(&self, ttl: Option<Ttl>) -> String {
        match ttl.or(self.config.default_ttl) {
            Some(Ttl::Expire(after)) => after.as_millis().to_string(),
            Some(Ttl::Never) | None => String::new(),
        }
    }

    /// Reads keys in one script: the call fails as a whole, or each key has
    /// its own answer (a malformed item fails alone).
    async fn read(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Result<Option<GetResponse>, StateError>>, StateError> {
        let mut invocation = self.get.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        let mut connection = self.commands.clone();
        let reply: Vec<Value> = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|err| backend("get", err))?;
        if reply.len() != keys.len() * 4 {
            return Err(StateError::Backend(anyhow::anyhow!(
                "redis get: unexpected reply of {} values for {} keys",
                reply.len(),
                keys.len()
            )));
        }
        let now = SystemTime::now();
        Ok(reply
            .chunks(4)
            .zip(keys)
            .map(|(item, key)| parse_item(item, key, now))
            .collect())
    }

    async fn run(&self, ops: &[Operation]) -> Result<(), StateError> {
        let mut invocation = self.transact.prepare_invoke();
        for op in ops {
            invocation.key(op.key());
            match op {
                Operation::Upsert(req) => {
                    if let Some(etag) = &req.etag {
                        check_etag(etag)?;
                    }
                    let first = req.etag.is_none() && req.concurrency == Concurrency::FirstWrite;
                    invocation
                        .arg("set")
                        .arg(&req.value[..])
                        .arg(req.etag.as_deref().unwrap_or_default())
                        .arg(if first { "1" } else { "0" })
                        .arg(self.ttl_arg(req.ttl));
                }
                Operation::Delete(req) => {
                    if let Some(etag) = &req.etag {
                        check_etag(etag)?;
                    }
                    invocation
                        .arg("del")
                        .arg("")
                        .arg(req.etag.as_deref().unwrap_or_default())
                        .arg("0")
                        .arg("");
                }
            }
        }
        let mut connection = self.commands.clone();
        let applied: i64 = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|err| backend("write", err))?;
        if applied == 1 {
            Ok(())
        } else {
            Err(StateError::EtagMismatch)
        }
    }
}

fn bytes_of(value: &Value) -> Option<Bytes> {
    match value {
        Value::BulkString(bytes) => Some(Bytes::copy_from_slice(bytes)),
        Value::SimpleString(text) => Some(Bytes::copy_from_slice(text.as_bytes())),
        Value::Int(n) => Some(Bytes::from(n.to_string())),
        _ => None,
    }
}

fn parse_item(
    item: &[Value],
    key: &str,
    now: SystemTime,
) -> Result<Option<GetResponse>, StateError> {
    let [kind, data, version, pttl] = item else {
        unreachable!("chunks of four");
    };
    let kind = match kind {
        Value::Int(kind) => *kind,
        other => {
            return Err(StateError::Backend(anyhow::anyhow!(
                "redis get: unexpected kind {other:?}"
            )));
        }
    };
    if kind == 0 {
        return Ok(None);
    }
    let Some(data) = bytes_of(data) else {
        return Err(StateError::Backend(anyhow::anyhow!(
            "redis get: required hash field 'data' or 'version' was not found for key {key}"
        )));
    };
    let etag = bytes_of(version).map(|v| String::from_utf8_lossy(&v).into_owned());
    if kind == 1 && etag.is_none() {
        return Err(StateError::Backend(anyhow::anyhow!(
            "redis get: required hash field 'data' or 'version' was not found for key {key}"
        )));
    }
    let mut metadata = Metadata::new();
    if let Value::Int(ms) = pttl
        && *ms >= 0
    {
        let at = now + Duration::from_millis(*ms as u64);
        metadata.insert(TTL_EXPIRE_TIME_KEY.to_owned(), format_rfc3339(at));
    }
    Ok(Some(GetResponse {
        data,
        etag,
        metadata,
    }))
}

#[async_trait]
impl StateStore for RedisStateStore {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    async fn get(&self, req: &GetRequest) -> Result<Option<GetResponse>, StateError> {
        self.read(&[&req.key]).await?.pop().unwrap_or(Ok(None))
    }

    /// One script reads every key, in one round trip.
    async fn bulk_get(
        &self,
        reqs: &[GetRequest],
        _parallelism: usize,
    ) -> Vec<Result<Option<GetResponse>, StateError>> {
        let keys: Vec<&str> = reqs.iter().map(|req| req.key.as_str()).collect();
        match self.read(&keys).await {
            Ok(items) => items,
            Err(err) => bulk_failure(reqs.len(), &err),
        }
    }

    async fn set(&self, req: &SetRequest) -> Result<(), StateError> {
        self.run(&[Operation::Upsert(req.clone())]).await
    }

    async fn delete(&self, req: &DeleteRequest) -> Result<(), StateError> {
        self.run(&[Operation::Delete(req.clone())]).await
    }

    async fn transact(&self, ops: &[Operation], _metadata: &Metadata) -> Result<(), StateError> {
        self.run(ops).await
    }
}
