//! The Go MySQL driver's connection strings, as Dapr's components take
//! them: `[user[:password]@][protocol[(address)]]/[dbname][?param=value&...]`,
//! for example `root:@tcp(localhost:3306)/?allowNativePasswords=true`.

use std::time::Duration;

use mecha_core::units::parse_go_duration;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

/// A parsed connection string.
#[derive(Clone, Debug)]
pub struct Dsn {
    pub options: MySqlConnectOptions,
    pub database: Option<String>,
    pub connect_timeout: Option<Duration>,
    /// `tls=custom`: TLS verified against the component's `pemPath`.
    pub custom_tls: bool,
    /// Parameters the driver sends as `SET name = value` on each connection.
    pub system_variables: Vec<(String, String)>,
}

/// Go's `url.QueryUnescape` (`+` is a space) or `url.PathUnescape`.
fn unescape(text: &str, plus_is_space: bool) -> Result<String, String> {
    let text = if plus_is_space {
        text.replace('+', " ")
    } else {
        text.to_owned()
    };
    // The error does not repeat the text: it may be a password.
    mecha_core::address::percent_decode(&text)
        .ok_or_else(|| "invalid %-escape in the DSN".to_owned())
}

fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{name}: '{value}' is not a boolean")),
    }
}

/// Parses a DSN. As the Go driver does: the last `/` ends the address,
/// the last `@` before it ends the user info, and the first `:` in that
/// separates the password, which needs no escaping.
pub fn parse(text: &str) -> Result<Dsn, String> {
    let slash = text
        .rfind('/')
        .ok_or("invalid DSN: missing the slash before the database name")?;
    let (head, tail) = (&text[..slash], &text[slash + 1..]);
    let mut options = MySqlConnectOptions::new();
    let address_part = match head.rfind('@') {
        Some(at) => {
            let userinfo = &head[..at];
            let (user, password) = match userinfo.find(':') {
                Some(colon) => (&userinfo[..colon], Some(&userinfo[colon + 1..])),
                None => (userinfo, None),
            };
            options = options.username(user);
            if let Some(password) = password.filter(|p| !p.is_empty()) {
                options = options.password(password);
            }
            &head[at + 1..]
        }
        None => head,
    };
    if !address_part.is_empty() {
        let (protocol, address) = match address_part.find('(') {
            Some(open) => {
                let address = address_part[open + 1..]
                    .strip_suffix(')')
                    .ok_or("invalid DSN: the network address is not closed by ')'")?;
                (&address_part[..open], address)
            }
            None => (address_part, ""),
        };
        match protocol {
            "tcp" | "" => {
                if !address.is_empty() {
                    let (host, port) = split_host_port(address)?;
                    options = options.host(&host).port(port);
                } else {
                    options = options.host("127.0.0.1");
                }
            }
            "unix" => {
                options = options.socket(if address.is_empty() {
                    "/tmp/mysql.sock"
                } else {
                    address
                })
            }
            other => return Err(format!("invalid DSN: unsupported protocol '{other}'")),
        }
    } else {
        options = options.host("127.0.0.1");
    }
    let (database, params) = tail.split_once('?').unwrap_or((tail, ""));
    let database = (!database.is_empty())
        .then(|| unescape(database, false))
        .transpose()?;
    let mut dsn = Dsn {
        options,
        database,
        connect_timeout: None,
        custom_tls: false,
        system_variables: Vec::new(),
    };
    for param in params.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = param
            .split_once('=')
            .ok_or_else(|| format!("invalid DSN parameter '{param}': no '='"))?;
        let value = unescape(value, true)?;
        let duration =
            |value: &str| parse_go_duration(value).map_err(|err| format!("{name}: {err}"));
        match name {
            "tls" => {
                let mode = match value.as_str() {
                    "true" | "TRUE" | "True" | "1" => MySqlSslMode::VerifyIdentity,
                    "skip-verify" => MySqlSslMode::Required,
                    "preferred" => MySqlSslMode::Preferred,
                    "false" | "FALSE" | "False" | "0" => MySqlSslMode::Disabled,
                    "custom" => {
                        dsn.custom_tls = true;
                        MySqlSslMode::VerifyIdentity
                    }
                    other => return Err(format!("tls: unknown TLS config name '{other}'")),
                };
                dsn.options = dsn.options.ssl_mode(mode);
            }
            "timeout" => dsn.connect_timeout = Some(duration(&value)?),
            "readTimeout" | "writeTimeout" => {
                duration(&value)?;
            }
            "charset" => {
                let first = value.split(',').next().unwrap_or_default();
                dsn.options = dsn.options.charset(first);
            }
            "collation" => dsn.options = dsn.options.collation(&value),
            "allowNativePasswords"
            | "allowCleartextPasswords"
            | "allowOldPasswords"
            | "parseTime"
            | "clientFoundRows"
            | "interpolateParams"
            | "multiStatements"
            | "checkConnLiveness"
            | "allowAllFiles"
            | "allowFallbackToPlaintext"
            | "rejectReadOnly"
            | "columnsWithAlias" => {
                let enabled = parse_bool(name, &value)?;
                if name == "allowCleartextPasswords" {
                    dsn.options = dsn.options.enable_cleartext_plugin(enabled);
                }
            }
            // sqlx sets every session's time_zone to UTC; timestamps are
            // compared in SQL.
            "loc" | "maxAllowedPacket" | "serverPubKey" | "connectionAttributes" => {}
            _ => {
                let safe_name =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !safe_name || value.contains(';') {
                    return Err(format!("invalid DSN parameter '{name}'"));
                }
                dsn.system_variables.push((name.to_owned(), value));
            }
        }
    }
    Ok(dsn)
}

fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let (host, port) = mecha_core::address::split_host_port(address)
        .map_err(|err| format!("invalid DSN: {err}"))?;
    Ok((host, port.unwrap_or(3306)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dapr_examples() {
        let dsn = parse("root:@tcp(localhost:3306)/?allowNativePasswords=true").unwrap();
        assert_eq!(dsn.options.get_username(), "root");
        assert_eq!(
            (dsn.options.get_host(), dsn.options.get_port()),
            ("localhost", 3306)
        );
        assert_eq!(dsn.database, None);
        let dsn = parse("dapr:p@ss:w/rd@tcp([::1]:3307)/my%20db?tls=custom&timeout=5s&charset=utf8mb4,utf8&sql_mode=%27ANSI%27").unwrap();
        assert_eq!(dsn.options.get_username(), "dapr");
        assert_eq!(
            (dsn.options.get_host(), dsn.options.get_port()),
            ("::1", 3307)
        );
        assert_eq!(dsn.database.as_deref(), Some("my db"));
        assert!(dsn.custom_tls);
        assert_eq!(dsn.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(dsn.options.get_charset(), "utf8mb4");
        assert_eq!(
            dsn.system_variables,
            [("sql_mode".to_owned(), "'ANSI'".to_owned())]
        );
        let dsn = parse("/").unwrap();
        assert_eq!(dsn.options.get_host(), "127.0.0.1");
        let dsn = parse("u@unix(/run/mysqld/mysqld.sock)/db").unwrap();
        assert!(dsn.options.get_socket().is_some());
    }

    #[test]
    fn bad_strings_say_why() {
        for (text, expected) in [
            ("root@tcp(localhost:3306)", "slash"),
            ("root@tcp(localhost:3306/", "')'"),
            ("root@tcp(localhost:abc)/", "not a port"),
            ("root@udp(x)/", "protocol"),
            ("root@tcp(x)/?tls=sometimes", "TLS config"),
            ("root@tcp(x)/?parseTime=maybe", "boolean"),
            ("root@tcp(x)/?x;y=1", "invalid DSN parameter"),
            ("root@tcp(x)/?timeout=soon", "timeout"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
