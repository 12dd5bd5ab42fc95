//! What the SQL bindings (`bindings.postgresql`, `bindings.mysql`) share:
//! the `sql` and `params` request metadata, parameters written into the
//! statement as literals the server types from their context, and the
//! response metadata daprd's bindings answer with.
//!
//! Parameters become literals, not protocol parameters, so a JSON string
//! goes into a column of any type the server can read it as (a timestamp,
//! a UUID, a numeric), as Dapr's drivers allow. A literal can never end
//! early, even where this lexer and the server would read a statement
//! differently: PostgreSQL strings are Unicode-escaped (no quote or
//! backslash of their own), MySQL strings are hexadecimal. Placeholders
//! inside the statement's own strings, quoted names and comments are left
//! alone.

use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use serde_json::Value;

use crate::{BindingError, InvokeRequest, InvokeResponse, Metadata};

/// The operations of a SQL binding.
pub const OPERATIONS: &[&str] = &["exec", "query", "close"];

/// The request's `sql`, which every operation but `close` needs.
pub fn statement(req: &InvokeRequest) -> Result<&str, BindingError> {
    req.meta("sql")
        .filter(|sql| !sql.trim().is_empty())
        .ok_or_else(|| BindingError::Invalid("required metadata not set: sql".into()))
}

/// The request's `params`: a JSON array, or none.
pub fn params(req: &InvokeRequest) -> Result<Option<Vec<Value>>, BindingError> {
    let Some(text) = req.meta("params").filter(|p| !p.trim().is_empty()) else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(values)) => Ok(Some(values)),
        Ok(_) => Err(BindingError::Invalid(
            "metadata params must be a JSON array".into(),
        )),
        Err(err) => Err(BindingError::Invalid(format!(
            "metadata params is not JSON: {err}"
        ))),
    }
}

/// Which server's lexical rules and placeholders a statement follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `$1`, `$2`, ...; `'...'`, `E'...'`, `$tag$...$tag$`, `"..."`,
    /// `--` and nested `/* */` comments.
    Postgres,
    /// `?`; `'...'` and `"..."` with backslash escapes, `` `...` ``, `#`,
    /// `-- ` and `/* */` comments.
    MySql,
}

fn ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// The end (exclusive) of a quoted run that starts at `start` with
/// `quote`, a doubled quote standing for itself; with `backslash`, a
/// backslash escapes the next byte.
fn quoted_end(sql: &[u8], start: usize, quote: u8, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < sql.len() {
        match sql[i] {
            b'\\' if backslash => i += 2,
            b if b == quote => {
                if sql.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    sql.len()
}

fn line_end(sql: &[u8], start: usize) -> usize {
    sql[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(sql.len(), |p| start + p + 1)
}

/// The end of a `/* */` comment at `start`, nested as PostgreSQL's are.
fn block_end(sql: &[u8], start: usize, nested: bool) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < sql.len() {
        if sql[i] == b'/' && sql[i + 1] == b'*' && (nested || depth == 0) {
            depth += 1;
            i += 2;
        } else if sql[i] == b'*' && sql[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    sql.len()
}

/// A PostgreSQL dollar-quote tag at `start` (`$$`, `$tag$`): its length.
fn dollar_tag(sql: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if sql.get(i).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    while i < sql.len() && ident_char(sql[i]) {
        i += 1;
    }
    (sql.get(i) == Some(&b'$')).then_some(i + 1 - start)
}

/// Writes `params` into `sql` at its placeholders, each rendered by
/// `render`. Every placeholder must have its parameter, and every
/// parameter its placeholder.
pub fn bind(
    dialect: Dialect,
    sql: &str,
    params: &[Value],
    render: impl Fn(&Value) -> String,
) -> Result<String, BindingError> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16 * params.len());
    let mut used = vec![false; params.len()];
    let mut copied = 0;
    let mut next_question = 0;
    let mut i = 0;
    let previous_ident = |i: usize| i > 0 && (ident_char(bytes[i - 1]) || bytes[i - 1] == b'$');
    while i < bytes.len() {
        let b = bytes[i];
        let skip_to = match (dialect, b) {
            (Dialect::Postgres, b'\'') => {
                let escaped =
                    i > 0 && matches!(bytes[i - 1], b'e' | b'E') && !previous_ident(i - 1);
                Some(quoted_end(bytes, i, b'\'', escaped))
            }
            (Dialect::Postgres, b'"') => Some(quoted_end(bytes, i, b'"', false)),
            (Dialect::MySql, b'\'' | b'"') => Some(quoted_end(bytes, i, b, true)),
            (Dialect::MySql, b'`') => Some(quoted_end(bytes, i, b'`', false)),
            (_, b'-') if bytes.get(i + 1) == Some(&b'-') => match dialect {
                Dialect::Postgres => Some(line_end(bytes, i)),
                Dialect::MySql
                    if bytes
                        .get(i + 2)
                        .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()) =>
                {
                    Some(line_end(bytes, i))
                }
                Dialect::MySql => None,
            },
            (Dialect::MySql, b'#') => Some(line_end(bytes, i)),
            (_, b'/') if bytes.get(i + 1) == Some(&b'*') => {
                Some(block_end(bytes, i, dialect == Dialect::Postgres))
            }
            (Dialect::Postgres, b'$') if !previous_ident(i) => match dollar_tag(bytes, i) {
                Some(len) => {
                    let tag = &bytes[i..i + len];
                    let body = i + len;
                    let end = bytes[body..]
                        .windows(len)
                        .position(|w| w == tag)
                        .map_or(bytes.len(), |p| body + p + len);
                    Some(end)
                }
                None => None,
            },
            _ => None,
        };
        if let Some(end) = skip_to {
            i = end.max(i + 1);
            continue;
        }
        let placeholder = match (dialect, b) {
            (Dialect::Postgres, b'$')
                if !previous_ident(i) && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) =>
            {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                let number: usize = sql[i + 1..i + 1 + digits].parse().unwrap_or(usize::MAX);
                Some((number.wrapping_sub(1), 1 + digits))
            }
            (Dialect::MySql, b'?') => {
                next_question += 1;
                Some((next_question - 1, 1))
            }
            _ => None,
        };
        match placeholder {
            Some((index, len)) => {
                let value = params.get(index).ok_or_else(|| {
                    BindingError::Invalid(format!(
                        "the statement has a placeholder for parameter {}, and params has {}",
                        index.saturating_add(1),
                        params.len()
                    ))
                })?;
                used[index] = true;
                out.push_str(&sql[copied..i]);
                out.push_str(&render(value));
                i += len;
                copied = i;
            }
            None => i += 1,
        }
    }
    if let Some(unused) = used.iter().position(|u| !u) {
        return Err(BindingError::Invalid(format!(
            "params has {} values, and the statement no placeholder for parameter {}",
            params.len(),
            unused + 1
        )));
    }
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// What a SQL binding's database does; [`invoke`] does the rest.
#[async_trait]
pub trait SqlBackend: Send + Sync {
    /// The placeholders and quoting of the statements.
    const DIALECT: Dialect;

    /// A parameter as a literal that cannot end early.
    fn literal(value: &Value) -> String;

    /// Runs a statement; how many rows it changed.
    async fn exec(&self, sql: String) -> Result<u64, BindingError>;

    /// Runs a query; its rows, each a JSON value.
    async fn query(&self, sql: String) -> Result<Vec<Value>, BindingError>;

    /// Closes the connections (`close`): later operations fail.
    async fn close(&self);
}

/// Runs `exec`, `query` or `close` (the operation already checked) with the
/// request's `sql` and `params`, answering daprd's metadata.
pub async fn invoke<B: SqlBackend>(
    backend: &B,
    req: &InvokeRequest,
) -> Result<Option<InvokeResponse>, BindingError> {
    if req.operation == "close" {
        backend.close().await;
        return Ok(None);
    }
    let statement = self::statement(req)?;
    let bound = match params(req)? {
        Some(params) => bind(B::DIALECT, statement, &params, B::literal)?,
        None => statement.to_owned(),
    };
    let timing = Timing::start();
    if req.operation == "exec" {
        let rows = backend.exec(bound).await?;
        return Ok(Some(InvokeResponse {
            data: Default::default(),
            metadata: timing.finish("exec", statement, Some(rows)),
        }));
    }
    let rows = backend.query(bound).await?;
    Ok(Some(InvokeResponse {
        data: serde_json::to_vec(&rows).expect("JSON serializes").into(),
        metadata: timing.finish("query", statement, None),
    }))
}

/// When an operation started, for its response metadata.
pub struct Timing {
    start: SystemTime,
    started: Instant,
}

impl Timing {
    pub fn start() -> Self {
        Self {
            start: SystemTime::now(),
            started: Instant::now(),
        }
    }

    /// daprd's response metadata: `operation`, `sql`, `start-time`,
    /// `end-time`, `duration`, and `rows-affected` for `exec`.
    pub fn finish(self, operation: &str, sql: &str, rows_affected: Option<u64>) -> Metadata {
        let elapsed = self.started.elapsed();
        let mut metadata = Metadata::new();
        metadata.insert("operation".into(), operation.into());
        metadata.insert("sql".into(), sql.into());
        metadata.insert(
            "start-time".into(),
            mecha_core::units::format_rfc3339_nanos(self.start),
        );
        metadata.insert(
            "end-time".into(),
            mecha_core::units::format_rfc3339_nanos(self.start + elapsed),
        );
        metadata.insert(
            "duration".into(),
            mecha_core::units::format_go_duration(elapsed),
        );
        if let Some(rows) = rows_affected {
            metadata.insert("rows-affected".into(), rows.to_string());
        }
        metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mark(value: &Value) -> String {
        format!("<{value}>")
    }

    #[test]
    fn postgres_placeholders_outside_strings_names_and_comments() {
        let params = [json!(1), json!("two")];
        let sql = "SELECT $1, '$1', E'\\'$1', \"$1\", $$ $1 $$, $x$ $2 $x$, a$1 -- $2\n/* $1 /* $2 */ */ $2";
        // `a$e'..'` is a name then a plain string, not an escape string.
        assert_eq!(
            bind(Dialect::Postgres, "SELECT a$e'\\' $1 '", &params[..1], mark).unwrap(),
            "SELECT a$e'\\' <1> '"
        );
        assert_eq!(
            bind(Dialect::Postgres, sql, &params, mark).unwrap(),
            "SELECT <1>, '$1', E'\\'$1', \"$1\", $$ $1 $$, $x$ $2 $x$, a$1 -- $2\n/* $1 /* $2 */ */ <\"two\">"
        );
        // Repeated and out-of-order placeholders.
        assert_eq!(
            bind(Dialect::Postgres, "$2 + $1 + $2", &params, mark).unwrap(),
            "<\"two\"> + <1> + <\"two\">"
        );
        assert!(bind(Dialect::Postgres, "SELECT $3", &params, mark).is_err());
        assert!(bind(Dialect::Postgres, "SELECT $0", &params, mark).is_err());
        assert!(
            bind(Dialect::Postgres, "SELECT $1", &params, mark).is_err(),
            "$2 unused"
        );
        assert!(
            bind(
                Dialect::Postgres,
                "SELECT $99999999999999999999999",
                &params,
                mark
            )
            .is_err()
        );
    }

    #[test]
    fn mysql_placeholders_outside_strings_names_and_comments() {
        let params = [json!(1), json!(null), json!("x")];
        // `--` is a comment only before a space: `?--?` is two minuses.
        let sql = "SELECT ?, '?', 'it\\'s ?', \"?\", `?` # ?\n-- ?\n/* ? */ ?--?";
        assert_eq!(
            bind(Dialect::MySql, sql, &params, mark).unwrap(),
            "SELECT <1>, '?', 'it\\'s ?', \"?\", `?` # ?\n-- ?\n/* ? */ <null>--<\"x\">"
        );
        assert!(bind(Dialect::MySql, "SELECT ?", &params, mark).is_err());
    }

    #[test]
    fn unterminated_text_never_panics() {
        for sql in ["'", "\"", "$$", "$a$", "/*", "--", "E'\\", "`", "$"] {
            let _ = bind(Dialect::Postgres, sql, &[], mark);
            let _ = bind(Dialect::MySql, sql, &[], mark);
        }
    }
}
