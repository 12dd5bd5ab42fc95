//! `bindings.redis`: an output binding on Redis strings — `create` (SET,
//! with `ttlInSeconds`), `get` (GET, or GETDEL with `delete: true`),
//! `delete` (DEL) and `increment` (INCR, with `ttlInSeconds`), the key in
//! the request's `key` metadata, as daprd's.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use mecha_bindings::*;
use mecha_core::ComponentFactory;
use redis::aio::ConnectionManager;

use crate::settings::Settings;

const OPERATIONS: &[&str] = &["create", "get", "delete", "increment"];

pub const BINDINGS_REDIS: ComponentFactory<dyn Binding, Settings> = ComponentFactory::new(
    "bindings.redis",
    |_, metadata, _| Settings::from_metadata(metadata),
    |config| Box::pin(connect(config)),
);

async fn connect(config: Settings) -> anyhow::Result<Arc<dyn Binding>> {
    Ok(Arc::new(RedisBinding::connect(config).await?))
}

/// The `bindings.redis` binding.
pub struct RedisBinding {
    commands: ConnectionManager,
}

impl Binding for RedisBinding {
    fn output(self: Arc<Self>) -> Option<Arc<dyn OutputBinding>> {
        Some(self)
    }
}

fn backend(what: &str, err: redis::RedisError) -> BindingError {
    BindingError::Backend(anyhow::anyhow!("redis {what}: {err}"))
}

/// `ttlInSeconds` of a request: a positive number of seconds, or none.
fn ttl(req: &InvokeRequest) -> Result<Option<u64>, BindingError> {
    match req.meta("ttlInSeconds").map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(seconds) if seconds > 0 => Ok(Some(seconds as u64)),
            // As daprd, zero or less is no expiry.
            Ok(_) => Ok(None),
            Err(_) => Err(BindingError::Invalid(format!(
                "metadata ttlInSeconds '{text}' is not a whole number of seconds"
            ))),
        },
    }
}

impl RedisBinding {
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let (_, commands) = settings.connect().await?;
        Ok(Self { commands })
    }
}

#[async_trait]
impl OutputBinding for RedisBinding {
    fn operations(&self) -> &[&'static str] {
        OPERATIONS
    }

    async fn invoke(&self, req: &InvokeRequest) -> Result<Option<InvokeResponse>, BindingError> {
        self.check_operation(&req.operation)?;
        let key = req.meta("key").filter(|k| !k.is_empty()).ok_or_else(|| {
            BindingError::Invalid("redis binding: missing key in request metadata".into())
        })?;
        let mut conn = self.commands.clone();
        match req.operation.as_str() {
            "create" => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key).arg(req.data.as_ref());
                if let Some(ttl) = ttl(req)? {
                    cmd.arg("EX").arg(ttl);
                }
                let () = cmd
                    .query_async(&mut conn)
                    .await
                    .map_err(|err| backend("SET", err))?;
                Ok(None)
            }
            "get" => {
                let delete = req
                    .meta("delete")
                    .is_some_and(|d| d.eq_ignore_ascii_case("true") || d == "1");
                let command = if delete { "GETDEL" } else { "GET" };
                let value: Option<Vec<u8>> = redis::cmd(command)
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|err| backend(command, err))?;
                Ok(Some(InvokeResponse {
                    data: value.map(Bytes::from).unwrap_or_default(),
                    metadata: Metadata::new(),
                }))
            }
            "delete" => {
                let _: i64 = redis::cmd("DEL")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|err| backend("DEL", err))?;
                Ok(None)
            }
            "increment" => {
                let ttl = ttl(req)?;
                let mut pipe = redis::pipe();
                pipe.atomic().cmd("INCR").arg(key);
                if let Some(ttl) = ttl {
                    pipe.cmd("EXPIRE").arg(key).arg(ttl).ignore();
                }
                let (_value,): (i64,) = pipe
                    .query_async(&mut conn)
                    .await
                    .map_err(|err| backend("INCR", err))?;
                Ok(None)
            }
            _ => unreachable!("operation checked"),
        }
    }
}
