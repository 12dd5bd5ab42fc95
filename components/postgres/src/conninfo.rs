//! PostgreSQL connection strings as Dapr's components (pgx) take them: a
//! URL (`postgres://user:pass@host:5432/db?sslmode=disable`) or libpq's
//! `key=value` form (`host=localhost user=postgres dbname=test`), with
//! pgx's `pool_*` keys. Anything else is sent to the server as a run-time
//! parameter (`search_path`, `application_name`, ...).

use std::time::Duration;

use mecha_core::units::parse_go_duration;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// The pool settings a connection string may carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolSettings {
    pub max_connections: Option<u32>,
    pub min_connections: Option<u32>,
    pub max_lifetime: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
}

/// A parsed connection string.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub options: PgConnectOptions,
    pub pool: PoolSettings,
}

/// The `connectionString` (or its alias `url`) of a component, checked:
/// every problem is recorded in the reader.
pub fn from_metadata(meta: &mecha_core::MetadataReader<'_>) -> String {
    let connection_string = meta
        .string("connectionString")
        .or_else(|| meta.string("url"))
        .unwrap_or_else(|| {
            meta.error("required metadata field 'connectionString' is missing");
            String::new()
        });
    if !connection_string.is_empty()
        && let Err(err) = parse(&connection_string)
    {
        meta.error(format!("metadata field 'connectionString': {err}"));
    }
    connection_string
}

/// Parses a connection string in either form. The environment (`PGHOST`,
/// `PGUSER`, ...) and `~/.pgpass` fill what it leaves out, as in pgx.
pub fn parse(text: &str) -> Result<ConnInfo, String> {
    let text = text.trim();
    let pairs = if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        url_pairs(text)?
    } else {
        dsn_pairs(text)?
    };
    let mut options = PgConnectOptions::new();
    let mut pool = PoolSettings::default();
    let mut runtime = Vec::new();
    for (key, value) in pairs {
        let duration = |value: &str| -> Result<Duration, String> {
            parse_go_duration(value).map_err(|err| format!("{key}: {err}"))
        };
        let count = |value: &str| -> Result<u32, String> {
            value
                .parse()
                .map_err(|_| format!("{key}: '{value}' is not a number"))
        };
        match key.as_str() {
            "host" => {
                // pgx takes a list of hosts to try in turn; the first is used.
                let host = value.split(',').next().unwrap_or_default();
                options = if host.starts_with('/') {
                    options.socket(host)
                } else {
                    options.host(host)
                };
            }
            "hostaddr" => options = options.host(&value),
            "port" => {
                let port = value.split(',').next().unwrap_or_default();
                options = options.port(
                    port.parse()
                        .map_err(|_| format!("port: '{value}' is not a port"))?,
                );
            }
            "user" => options = options.username(&value),
            "password" => options = options.password(&value),
            "dbname" | "database" => options = options.database(&value),
            "sslmode" => {
                let mode: PgSslMode = value
                    .parse()
                    .map_err(|_| format!("sslmode: '{value}' is not an SSL mode"))?;
                options = options.ssl_mode(mode);
            }
            "sslrootcert" => options = options.ssl_root_cert(&value),
            "sslcert" => options = options.ssl_client_cert(&value),
            "sslkey" => options = options.ssl_client_key(&value),
            "application_name" => options = options.application_name(&value),
            "connect_timeout" => {
                let seconds: u64 = value.parse().map_err(|_| {
                    format!("connect_timeout: '{value}' is not a number of seconds")
                })?;
                pool.connect_timeout = (seconds > 0).then(|| Duration::from_secs(seconds));
            }
            "statement_cache_capacity" => {
                options = options.statement_cache_capacity(count(&value)? as usize)
            }
            "pool_max_conns" => pool.max_connections = Some(count(&value)?.max(1)),
            "pool_min_conns" => pool.min_connections = Some(count(&value)?),
            "pool_max_conn_lifetime" => pool.max_lifetime = Some(duration(&value)?),
            "pool_max_conn_idle_time" => pool.idle_timeout = Some(duration(&value)?),
            // pgx knobs that have no equivalent here, or that only tune it.
            "pool_health_check_period"
            | "pool_max_conn_lifetime_jitter"
            | "pool_min_idle_conns"
            | "pool_ping_timeout"
            | "default_query_exec_mode"
            | "description_cache_capacity"
            | "sslsni"
            | "sslpassword"
            | "target_session_attrs"
            | "passfile"
            | "krbsrvname"
            | "krbspn"
            | "service"
            | "servicefile"
            | "connect_recover_timeout" => {}
            _ => runtime.push((key, value)),
        }
    }
    if !runtime.is_empty() {
        options = options.options(runtime);
    }
    Ok(ConnInfo { options, pool })
}

/// Decodes a part of the URL; the error does not repeat the part (it may
/// be the password).
fn percent_decode(text: &str) -> Result<String, String> {
    mecha_core::address::percent_decode(text)
        .ok_or_else(|| "invalid percent-encoding in the URL".to_owned())
}

/// `postgres://[user[:password]@][host][:port][/dbname][?key=value&...]`.
fn url_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let rest = text.split_once("://").map(|(_, rest)| rest).unwrap_or(text);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut pairs = Vec::new();
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                pairs.push(("user".to_owned(), percent_decode(user)?));
            }
            if let Some(password) = password {
                pairs.push(("password".to_owned(), percent_decode(password)?));
            }
            host_port
        }
        None => authority,
    };
    let (host, port) = mecha_core::address::split_host_port(host_port)?;
    if !host.is_empty() {
        pairs.push(("host".to_owned(), percent_decode(&host)?));
    }
    if let Some(port) = port {
        pairs.push(("port".to_owned(), port.to_string()));
    }
    if !path.is_empty() {
        pairs.push(("dbname".to_owned(), percent_decode(path)?));
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(&value.replace('+', " "))?;
        pairs.push((percent_decode(key)?, value));
    }
    Ok(pairs)
}

/// libpq's `key=value key2='quoted value'` form, with `\` escapes.
fn dsn_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "invalid connection string: '{key}' has no '=' value"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(format!(
                            "invalid connection string: unterminated quote after '{key}='"
                        ));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_form() {
        let pairs = dsn_pairs(
            r"host=localhost user=postgres password='it\'s a secret' port = 5432 database=dapr_test pool_max_conns=10",
        )
        .unwrap();
        assert_eq!(
            pairs,
            [
                ("host", "localhost"),
                ("user", "postgres"),
                ("password", "it's a secret"),
                ("port", "5432"),
                ("database", "dapr_test"),
                ("pool_max_conns", "10"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let info = parse("host=db port=6432 user=me dbname=x pool_max_conns=10 connect_timeout=3 search_path=app").unwrap();
        assert_eq!(info.options.get_host(), "db");
        assert_eq!(info.options.get_port(), 6432);
        assert_eq!(info.options.get_username(), "me");
        assert_eq!(info.options.get_database(), Some("x"));
        assert_eq!(info.pool.max_connections, Some(10));
        assert_eq!(info.pool.connect_timeout, Some(Duration::from_secs(3)));
        assert!(
            info.options
                .get_options()
                .unwrap_or_default()
                .contains("search_path=app")
        );
    }

    #[test]
    fn url_form() {
        let info = parse("postgres://us%40er:p%3Ass@[::1]:5433/my%20db?sslmode=disable&pool_max_conn_idle_time=5m&application_name=mecha").unwrap();
        assert_eq!(info.options.get_username(), "us@er");
        assert_eq!(info.options.get_host(), "::1");
        assert_eq!(info.options.get_port(), 5433);
        assert_eq!(info.options.get_database(), Some("my db"));
        assert_eq!(info.options.get_application_name(), Some("mecha"));
        assert_eq!(info.pool.idle_timeout, Some(Duration::from_secs(300)));
        let info = parse("postgresql://localhost/test").unwrap();
        assert_eq!(
            (info.options.get_host(), info.options.get_database()),
            ("localhost", Some("test"))
        );
    }

    #[test]
    fn bad_strings_say_why() {
        for (text, expected) in [
            ("host=a port=x", "not a port"),
            ("host='unterminated", "unterminated"),
            ("host=a lonely", "no '='"),
            ("sslmode=sometimes", "SSL mode"),
            ("postgres://a:%zz@host/db", "percent"),
            ("pool_max_conn_lifetime=forever", "pool_max_conn_lifetime"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
