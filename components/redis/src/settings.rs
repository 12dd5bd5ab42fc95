//! The connection keys every Dapr Redis component shares (`redisHost`,
//! `redisPassword`, `enableTLS`, ...), read into a client.

use std::time::Duration;

use mecha_core::MetadataReader;
use mecha_core::address::{percent_encode as encode, split_host_port as split_host};

/// How to reach Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
    /// TLS without certificate verification, as Dapr's `enableTLS`.
    pub tls: bool,
    pub dial_timeout: Duration,
    /// The longest a command may wait for its answer.
    pub timeout: Duration,
}

/// Keys of go-redis' connection pool, which this client (one multiplexed
/// connection, reconnecting by itself) has no use for: accepted, so Dapr
/// files load without warnings.
const POOL_KEYS: &[&str] = &[
    "poolSize",
    "minIdleConns",
    "poolTimeout",
    "idleTimeout",
    "idleCheckFrequency",
    "maxConnAge",
    "redisMaxRetries",
    "redisMinRetryInterval",
    "redisMaxRetryInterval",
    "maxRetries",
    "maxRetryBackoff",
];

/// A duration as Dapr's Redis components read them: a bare number is
/// milliseconds.
pub fn duration(meta: &MetadataReader<'_>, name: &str, default: Duration) -> Duration {
    meta.duration_or(name, default, Duration::from_millis(1))
}

impl Settings {
    /// Reads the connection keys, recording every problem.
    pub fn from_metadata(meta: &MetadataReader<'_>) -> Self {
        for key in POOL_KEYS {
            let _ = meta.string(key);
        }
        let host_value = meta.required("redisHost");
        let redis_port = meta.string("redisPort");
        let (host, host_port) = split_host(&host_value).unwrap_or_else(|problem| {
            meta.error(format!(
                "metadata field 'redisHost': '{host_value}' is not host:port ({problem})"
            ));
            (String::new(), None)
        });
        let given_port = redis_port.as_deref().map(|p| {
            p.parse::<u16>().unwrap_or_else(|_| {
                meta.error(format!("metadata field 'redisPort': '{p}' is not a port"));
                0
            })
        });
        let port = match (host_port, given_port) {
            (Some(a), Some(b)) if a != b => {
                meta.error(format!(
                    "metadata field 'redisPort' ({b}) disagrees with the port of redisHost ({a})"
                ));
                a
            }
            (Some(port), _) | (None, Some(port)) => port,
            (None, None) => 6379,
        };
        match meta
            .string_or("redisType", "node")
            .to_ascii_lowercase()
            .as_str()
        {
            "node" => {}
            "cluster" => meta.error("redisType 'cluster' is not supported yet; use a single node"),
            other => meta.error(format!(
                "metadata field 'redisType': '{other}' is neither node nor cluster"
            )),
        }
        if meta.bool_or("failover", false) {
            meta.error("failover (Redis Sentinel) is not supported yet");
        }
        let _ = meta.string("sentinelMasterName");
        for unsupported in ["useEntraID", "useAzureAD"] {
            if meta.bool_or(unsupported, false) {
                meta.error(format!("{unsupported} is not supported"));
            }
        }
        for client_tls in ["clientCert", "clientKey"] {
            if meta.string(client_tls).is_some() {
                meta.error(format!(
                    "{client_tls}: TLS client certificates for Redis are not supported yet"
                ));
            }
        }
        let read = duration(meta, "readTimeout", Duration::from_secs(3));
        let write = duration(meta, "writeTimeout", read);
        Self {
            host,
            port,
            username: meta.string("redisUsername"),
            password: meta.string("redisPassword"),
            db: meta.i64_or("redisDB", 0),
            tls: meta.bool_or("enableTLS", false),
            dial_timeout: duration(meta, "dialTimeout", Duration::from_secs(5)),
            timeout: read.max(write).max(Duration::from_millis(100)),
        }
    }

    /// The `redis://` (or `rediss://`) URL of these settings.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let credentials = match (&self.username, &self.password) {
            (None, None) => String::new(),
            (user, password) => format!(
                "{}:{}@",
                encode(user.as_deref().unwrap_or_default()),
                encode(password.as_deref().unwrap_or_default())
            ),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let insecure = if self.tls { "#insecure" } else { "" };
        format!(
            "{scheme}://{credentials}{host}:{}/{}{insecure}",
            self.port, self.db
        )
    }

    pub fn client(&self) -> anyhow::Result<redis::Client> {
        redis::Client::open(self.url())
            .map_err(|err| anyhow::anyhow!("invalid Redis settings: {err}"))
    }

    /// A client and its shared multiplexed connection, which reconnects by
    /// itself after the connection is lost (a command in flight then fails;
    /// none is retried, so nothing is applied twice).
    pub async fn connect(&self) -> anyhow::Result<(redis::Client, redis::aio::ConnectionManager)> {
        let client = self.client()?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.dial_timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2);
        let manager = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|err| {
                anyhow::anyhow!(
                    "cannot connect to Redis at {}:{}: {err}",
                    self.host,
                    self.port
                )
            })?;
        Ok((client, manager))
    }
}

#[cfg(test)]
mod tests {
    use mecha_core::Properties;

    use super::*;

    fn read(props: Properties) -> (Settings, Vec<String>) {
        let reader = MetadataReader::new(&props);
        let settings = Settings::from_metadata(&reader);
        (settings, reader.errors())
    }

    #[test]
    fn hosts_and_urls() {
        let (s, errors) = read(
            Properties::new()
                .with("redisHost", "localhost:6380")
                .with("redisPassword", "p@ss:word")
                .with("redisDB", "2"),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((s.host.as_str(), s.port), ("localhost", 6380));
        assert_eq!(s.url(), "redis://:p%40ss%3Aword@localhost:6380/2");
        let (s, _) = read(
            Properties::new()
                .with("redisHost", "cache")
                .with("enableTLS", "true")
                .with("redisUsername", "me"),
        );
        assert_eq!(s.url(), "rediss://me:@cache:6379/0#insecure");
        assert!(s.client().is_ok());
    }

    #[test]
    fn problems_are_reported() {
        let (_, errors) = read(
            Properties::new()
                .with("redisHost", "localhost:notaport")
                .with("redisType", "cluster")
                .with("failover", "true"),
        );
        let all = errors.join("\n");
        assert!(all.contains("redisHost"), "{all}");
        assert!(all.contains("cluster"), "{all}");
        assert!(all.contains("Sentinel"), "{all}");
        let (_, errors) = read(Properties::new());
        assert!(errors.iter().any(|e| e.contains("redisHost")));
    }
}
