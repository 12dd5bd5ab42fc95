//! Opening SQLite databases the way Dapr's components accept them, and
//! running work on them from async code.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, InterruptHandle, OpenFlags};
use tokio::sync::Mutex;

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
    // Room for every statement a component keeps compiled on one
    // connection (pub/sub's writer has 14), so none is compiled again.
    conn.set_prepared_statement_cache_capacity(32);
    conn.busy_timeout(busy_timeout)?;
    if wal && !is_memory(connection_string) {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    for (name, value) in uri_pragmas(connection_string) {
        conn.pragma_update(None, &name, &value)?;
    }
    Ok(conn)
}

/// Why a call on the database did not run to completion.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: operation timed out after {0:?}")]
    Timeout(Duration),
    #[error("sqlite: {0}")]
    Failed(String),
}

/// A connection behind a fair (first come, first served) async lock, so
/// waiters queue without holding a thread of the blocking pool.
struct Slot {
    conn: Arc<Mutex<Connection>>,
    interrupt: Arc<InterruptHandle>,
}

impl Slot {
    fn new(conn: Connection) -> Self {
        let interrupt = Arc::new(conn.get_interrupt_handle());
        Self {
            conn: Arc::new(Mutex::new(conn)),
            interrupt,
        }
    }
}

/// A database as components use it: a writer connection, a reader
/// connection where the database allows one, and a time limit per call.
pub struct Db {
    writer: Slot,
    reader: Option<Slot>,
    timeout: Duration,
}

impl Db {
    /// Opens the writer (and, for file databases, a reader) connection.
    /// Blocking: call it from the blocking pool.
    pub fn open(
        connection_string: &str,
        busy_timeout: Duration,
        wal: bool,
        timeout: Duration,
    ) -> rusqlite::Result<Self> {
        let writer = open(connection_string, busy_timeout, wal)?;
        let reader = if is_memory(connection_string) {
            None
        } else {
            Some(Slot::new(open(connection_string, busy_timeout, wal)?))
        };
        Ok(Self {
            writer: Slot::new(writer),
            reader,
            timeout,
        })
    }

    /// Runs `work` on the writer connection on this thread (for set-up,
    /// from the blocking pool).
    pub fn writer_blocking<T>(&self, work: impl FnOnce(&mut Connection) -> T) -> T {
        work(&mut self.writer.conn.blocking_lock())
    }

    /// Runs `work` on a connection in the blocking pool, within the time
    /// limit. Calls wait in line for the connection, first come first
    /// served (a caller that gives up leaves the line), and the time limit
    /// starts when a call's turn comes: many large writes at once queue
    /// instead of timing out behind each other. Nothing runs after the
    /// caller was told it failed: one whose SQL runs too long is
    /// interrupted (SQLite rolls it back); one that finished before the
    /// interrupt took effect is answered as it ended.
    pub async fn run<T, E, F>(&self, write: bool, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let slot = match (&self.reader, write) {
            (Some(reader), false) => reader,
            _ => &self.writer,
        };
        let mut conn = slot.conn.clone().lock_owned().await;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut task = tokio::task::spawn_blocking(move || work(&mut conn));
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(joined) => joined.map_err(|err| DbError::Failed(err.to_string()))?,
            Err(_) => {
                slot.interrupt.interrupt();
                // Wait for it to stop, so nothing it did outlives the answer;
                // work that finished anyway is reported as it ended (a write
                // that was made is never reported as failed).
                match task.await {
                    Ok(Ok(done)) => Ok(done),
                    _ => Err(DbError::Timeout(self.timeout).into()),
                }
            }
        }
    }
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
