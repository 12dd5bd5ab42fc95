//! Opening SQLite databases the way Dapr's components accept them.

use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// True when the connection string names an in-memory database, which only
/// one connection can see.
pub fn is_memory(connection_string: &str) -> bool {
    connection_string == ":memory:"
        || connection_string.starts_with("file::memory:")
        || connection_string.contains("mode=memory")
}

/// Opens a connection. Accepts a path, `:memory:` or a `file:` URI; the
/// `_pragma=name(value)` URI parameters Dapr's driver understands are run as
/// `PRAGMA name = value`.
pub fn open(
    connection_string: &str,
    busy_timeout: Duration,
    wal: bool,
) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(connection_string, flags)?;
    conn.busy_timeout(busy_timeout)?;
    if wal && !is_memory(connection_string) {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    for (name, value) in uri_pragmas(connection_string) {
        conn.pragma_update(None, &name, &value)?;
    }
    Ok(conn)
}

/// The `_pragma=name(value)` parameters of a `file:` URI.
fn uri_pragmas(connection_string: &str) -> Vec<(String, String)> {
    let Some((_, query)) = connection_string.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|param| param.strip_prefix("_pragma="))
        .filter_map(|pragma| {
            let (name, rest) = pragma.split_once('(')?;
            let value = rest.strip_suffix(')')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// True when `name` is safe to splice into SQL as an identifier.
pub fn valid_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pragmas_from_uri() {
        assert_eq!(
            uri_pragmas("file:data.db?_pragma=busy_timeout(5000)&mode=rwc&_pragma=foreign_keys(1)"),
            vec![
                ("busy_timeout".to_owned(), "5000".to_owned()),
                ("foreign_keys".to_owned(), "1".to_owned())
            ]
        );
        assert!(uri_pragmas("data.db").is_empty());
    }

    #[test]
    fn identifiers() {
        assert!(valid_identifier("state"));
        assert!(valid_identifier("my_state.v2"));
        assert!(!valid_identifier("state; DROP TABLE x"));
        assert!(!valid_identifier("1state"));
        assert!(!valid_identifier(""));
    }
}
