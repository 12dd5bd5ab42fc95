//! The state query language (`POST /v1.0-alpha1/state/{store}/query`,
//! `QueryStateAlpha1`): Dapr's JSON query, parsed once into [`Query`], with
//! one meaning on every store.
//!
//! ```json
//! {"filter": {"AND": [{"EQ": {"person.org": "Dev Ops"}}, {"IN": {"state": ["CA", "WA"]}}]},
//!  "sort": [{"key": "person.id", "order": "DESC"}],
//!  "page": {"limit": 10, "token": "20"}}
//! ```
//!
//! Semantics, the same on every store (SQL stores translate them, the rest
//! evaluate them with [`evaluate`]):
//! - a key is a dotted path into the stored JSON value (`person.org`);
//! - comparisons are typed: a number equals a number of the same value
//!   (`1` = `1.0`), a string equals the same string, byte for byte; `"1"` is
//!   not `1`. `GT`, `GTE`, `LT` and `LTE` take a number (numeric order) or a
//!   string (byte order). `NEQ` matches items that have the field with
//!   another value. A missing field matches only nothing;
//! - sorting orders values by type first (numbers, strings, booleans, null,
//!   objects and arrays, then items missing the field), then by value in
//!   the requested direction; ties are broken by key, so pages are stable;
//! - only items whose value is JSON take part (binary values are not
//!   documents), and only the app's own keys (its key prefix);
//! - `page.limit` 0 or absent means every result; the token is the offset
//!   of the next page, returned only when there is one.
//!
//! Limits, the same on every store, so that no translation hands a backend
//! more than it takes (SQLite's expression depth of 1000 is the tightest):
//! at most [`MAX_FILTER_TERMS`] filter terms (comparisons, `IN`, `AND`,
//! `OR`), [`MAX_IN_VALUES`] values in all the `IN`s (each a bound
//! parameter), and [`MAX_SORT_KEYS`] sort keys. A query beyond them is refused before any store sees it, as a
//! failed query (daprd's 500 `ERR_STATE_QUERY`), naming the limit.

mod eval;
pub mod sql;

pub use eval::evaluate;

use bytes::Bytes;
use serde_json::Value;

use crate::types::Metadata;

/// The most filter terms (comparisons, `IN`, `AND`, `OR`) in one query.
pub const MAX_FILTER_TERMS: usize = 500;
/// The most values in all the `IN` filters of one query.
pub const MAX_IN_VALUES: usize = 10_000;
/// The most sort keys in one query.
pub const MAX_SORT_KEYS: usize = 32;

/// A parsed query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    pub filter: Option<Filter>,
    pub sort: Vec<SortKey>,
    /// The most results per page; `None` for all of them.
    pub limit: Option<u64>,
    /// Results to skip (from the page token).
    pub offset: u64,
}

/// A path into a JSON value: its object keys, outermost first.
pub type Path = Vec<String>;

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Compare {
        op: CompareOp,
        path: Path,
        value: Scalar,
    },
    In {
        path: Path,
        values: Vec<Scalar>,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CompareOp {
    fn name(self) -> &'static str {
        match self {
            CompareOp::Eq => "EQ",
            CompareOp::Neq => "NEQ",
            CompareOp::Gt => "GT",
            CompareOp::Gte => "GTE",
            CompareOp::Lt => "LT",
            CompareOp::Lte => "LTE",
        }
    }

    /// The SQL operator of an ordering comparison.
    fn sql(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Neq => "<>",
            CompareOp::Gt => ">",
            CompareOp::Gte => ">=",
            CompareOp::Lt => "<",
            CompareOp::Lte => "<=",
        }
    }
}

/// A value a filter compares with.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKey {
    pub path: Path,
    pub descending: bool,
}

/// A query as a store gets it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryRequest {
    pub query: Query,
    /// Only stored keys starting with this take part (the app's key prefix
    /// with its separator); `None` when keys are stored raw.
    pub key_prefix: Option<String>,
    pub metadata: Metadata,
}

/// One result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryItem {
    /// The stored key (the app's key once the block removed the prefix).
    pub key: String,
    /// The stored JSON value.
    pub data: Bytes,
    pub etag: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryResponse {
    pub results: Vec<QueryItem>,
    /// The token of the next page, when there is one.
    pub token: Option<String>,
    pub metadata: Metadata,
}

impl QueryResponse {
    /// Builds a page from up to `limit + 1` rows read from `query.offset`
    /// on: the extra row, when present, only tells that a next page exists.
    pub fn page(query: &Query, mut rows: Vec<QueryItem>) -> Self {
        let token = match query.limit {
            Some(limit) if rows.len() as u64 > limit => {
                rows.truncate(limit as usize);
                Some((query.offset + limit).to_string())
            }
            _ => None,
        };
        Self {
            results: rows,
            token,
            metadata: Metadata::new(),
        }
    }
}

impl Query {
    /// How many rows a store should read: one more than the limit, to know
    /// whether another page follows.
    pub fn fetch(&self) -> Option<u64> {
        self.limit.map(|limit| limit.saturating_add(1))
    }

    /// Parses Dapr's query JSON.
    pub fn parse(text: &str) -> Result<Self, String> {
        count_values(text)?;
        let value: Value = serde_json::from_str(text)
            .map_err(|err| format!("failed to parse JSON query body: {err}"))?;
        let Value::Object(object) = value else {
            return Err("the query must be a JSON object".into());
        };
        let mut query = Query::default();
        if let Some(filter) = object.get("filter") {
            query.filter = match filter {
                Value::Null => None,
                Value::Object(unit) if unit.is_empty() => None,
                unit => Some(parse_filter(unit)?),
            };
        }
        match object.get("sort") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    query.sort.push(parse_sort(item)?);
                }
            }
            Some(_) => return Err("'sort' must be an array".into()),
        }
        match object.get("page") {
            None | Some(Value::Null) => {}
            Some(Value::Object(page)) => {
                match page.get("limit") {
                    None | Some(Value::Null) => {}
                    Some(limit) => {
                        let limit = limit
                            .as_u64()
                            .filter(|n| *n <= i64::MAX as u64)
                            .ok_or_else(|| {
                                format!("'page.limit' must be a whole number, not {limit}")
                            })?;
                        query.limit = (limit > 0).then_some(limit);
                    }
                }
                match page.get("token") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(token)) if token.is_empty() => {}
                    Some(Value::String(token)) => {
                        query.offset = token
                            .parse()
                            .ok()
                            .filter(|n| *n <= i64::MAX as u64)
                            .ok_or_else(|| format!("invalid page token '{token}'"))?;
                    }
                    Some(other) => {
                        return Err(format!("'page.token' must be a string, not {other}"));
                    }
                }
            }
            Some(_) => return Err("'page' must be an object".into()),
        }
        query.check_limits()?;
        Ok(query)
    }

    fn check_limits(&self) -> Result<(), String> {
        fn count(filter: &Filter, terms: &mut usize, values: &mut usize) {
            *terms += 1;
            match filter {
                Filter::Compare { .. } => {}
                Filter::In { values: list, .. } => *values += list.len(),
                Filter::And(filters) | Filter::Or(filters) => {
                    for filter in filters {
                        count(filter, terms, values);
                    }
                }
            }
        }
        let (mut terms, mut values) = (0, 0);
        if let Some(filter) = &self.filter {
            count(filter, &mut terms, &mut values);
        }
        if terms > MAX_FILTER_TERMS {
            return Err(format!(
                "the filter has {terms} terms, more than the limit of {MAX_FILTER_TERMS}"
            ));
        }
        if values > MAX_IN_VALUES {
            return Err(format!(
                "the IN filters have {values} values, more than the limit of {MAX_IN_VALUES}"
            ));
        }
        if self.sort.len() > MAX_SORT_KEYS {
            return Err(format!(
                "the query has {} sort keys, more than the limit of {MAX_SORT_KEYS}",
                self.sort.len()
            ));
        }
        Ok(())
    }
}

/// The most JSON values a query may hold in all: room for every limit at
/// once, so that a query far beyond them is refused before it is read into
/// a tree of values (an `IN` of a million values would take hundreds of
/// megabytes as a tree, from a few megabytes of text).
const MAX_QUERY_VALUES: usize = MAX_IN_VALUES + 8 * MAX_FILTER_TERMS + 8 * MAX_SORT_KEYS + 64;

/// Counts the values of a query's JSON without keeping them, stopping at
/// the first one over [`MAX_QUERY_VALUES`].
fn count_values(text: &str) -> Result<(), String> {
    use serde::de::{DeserializeSeed, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::cell::Cell;

    #[derive(Clone, Copy)]
    struct Counter<'c>(&'c Cell<usize>);

    impl Counter<'_> {
        fn bump<E: Error>(self) -> Result<(), E> {
            let seen = self.0.get() + 1;
            self.0.set(seen);
            if seen > MAX_QUERY_VALUES {
                return Err(E::custom(format!(
                    "the query has more than {MAX_QUERY_VALUES} JSON values, beyond its limits of \
                     {MAX_FILTER_TERMS} filter terms, {MAX_IN_VALUES} IN values and {MAX_SORT_KEYS} sort keys"
                )));
            }
            Ok(())
        }
    }

    impl<'de> DeserializeSeed<'de> for Counter<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Counter<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
            self.bump()
        }
        fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
            self.bump()
        }
        fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
            self.bump()
        }
        fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
            self.bump()
        }
        fn visit_str<E: Error>(self, _: &str) -> Result<(), E> {
            self.bump()
        }
        fn visit_unit<E: Error>(self) -> Result<(), E> {
            self.bump()
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            self.bump()?;
            while seq.next_element_seed(self)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            self.bump()?;
            while map.next_key::<IgnoredAny>()?.is_some() {
                map.next_value_seed(self)?;
            }
            Ok(())
        }
    }

    let seen = Cell::new(0);
    let mut reader = serde_json::Deserializer::from_str(text);
    match Counter(&seen).deserialize(&mut reader) {
        Err(err) if seen.get() > MAX_QUERY_VALUES => Err(err.to_string()),
        // Malformed JSON is reported by the full parse, with its own words.
        _ => Ok(()),
    }
}

fn parse_filter(unit: &Value) -> Result<Filter, String> {
    let Value::Object(unit) = unit else {
        return Err(format!("filter unit must be a map, not {unit}"));
    };
    let mut entries = unit.iter();
    let (Some((op, operand)), None) = (entries.next(), entries.next()) else {
        return Err("filter unit must have a single element".into());
    };
    let compare = match op.as_str() {
        "EQ" => Some(CompareOp::Eq),
        "NEQ" => Some(CompareOp::Neq),
        "GT" => Some(CompareOp::Gt),
        "GTE" => Some(CompareOp::Gte),
        "LT" => Some(CompareOp::Lt),
        "LTE" => Some(CompareOp::Lte),
        _ => None,
    };
    if let Some(op) = compare {
        let (key, value) = single_pair(op.name(), operand)?;
        let value = scalar(op.name(), value)?;
        let ordered = !matches!(op, CompareOp::Eq | CompareOp::Neq);
        if ordered && !matches!(value, Scalar::Number(_) | Scalar::String(_)) {
            return Err(format!(
                "{} filter needs a number or a string, not {value:?}",
                op.name()
            ));
        }
        return Ok(Filter::Compare {
            op,
            path: parse_path(key)?,
            value,
        });
    }
    match op.as_str() {
        "IN" => {
            let (key, values) = single_pair("IN", operand)?;
            let Value::Array(values) = values else {
                return Err("IN filter value must be an array".into());
            };
            let values = values
                .iter()
                .map(|value| scalar("IN", value))
                .collect::<Result<_, _>>()?;
            Ok(Filter::In {
                path: parse_path(key)?,
                values,
            })
        }
        "AND" | "OR" => {
            let Value::Array(units) = operand else {
                return Err(format!("{op} filter must be an array"));
            };
            if units.is_empty() {
                return Err(format!("{op} filter must contain at least one entry"));
            }
            let filters = units.iter().map(parse_filter).collect::<Result<_, _>>()?;
            Ok(if op == "AND" {
                Filter::And(filters)
            } else {
                Filter::Or(filters)
            })
        }
        other => Err(format!("unsupported filter \"{other}\"")),
    }
}

fn single_pair<'a>(op: &str, operand: &'a Value) -> Result<(&'a str, &'a Value), String> {
    let Value::Object(map) = operand else {
        return Err(format!("{op} filter must be a map"));
    };
    let mut entries = map.iter();
    match (entries.next(), entries.next()) {
        (Some((key, value)), None) => Ok((key, value)),
        _ => Err(format!("{op} filter must contain a single key/value pair")),
    }
}

fn scalar(op: &str, value: &Value) -> Result<Scalar, String> {
    Ok(match value {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => Scalar::Number(
            n.as_f64()
                .ok_or_else(|| format!("{op} filter: {n} is out of range"))?,
        ),
        Value::String(s) => Scalar::String(s.clone()),
        other => return Err(format!("{op} filter compares with a scalar, not {other}")),
    })
}

fn parse_sort(item: &Value) -> Result<SortKey, String> {
    let Value::Object(item) = item else {
        return Err(format!("a sort item must be an object, not {item}"));
    };
    let key = match item.get("key") {
        Some(Value::String(key)) => key,
        _ => return Err("a sort item needs a 'key' string".into()),
    };
    let descending = match item.get("order") {
        None | Some(Value::Null) => false,
        Some(Value::String(order)) => match order.to_ascii_uppercase().as_str() {
            "" | "ASC" => false,
            "DESC" => true,
            _ => return Err(format!("sort order '{order}' is neither ASC nor DESC")),
        },
        Some(other) => return Err(format!("sort order must be a string, not {other}")),
    };
    Ok(SortKey {
        path: parse_path(key)?,
        descending,
    })
}

/// Splits a dotted key into object keys. Keys may hold any character but
/// quotes, backslashes, braces, commas and control characters, so that
/// every store can name them safely.
fn parse_path(key: &str) -> Result<Path, String> {
    let segments: Path = key.split('.').map(str::to_owned).collect();
    for segment in &segments {
        if segment.is_empty() {
            return Err(format!("invalid key '{key}': empty path segment"));
        }
        if let Some(bad) = segment
            .chars()
            .find(|c| matches!(c, '"' | '\'' | '\\' | '{' | '}' | ',') || c.is_control())
        {
            return Err(format!("invalid key '{key}': '{bad}' is not allowed"));
        }
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(key: &str) -> Path {
        key.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn parses_the_dapr_example() {
        let query = Query::parse(
            r#"{"filter":{"OR":[{"EQ":{"person.org":"Dev Ops"}},
                {"AND":[{"EQ":{"person.org":"Finance"}},{"IN":{"state":["CA","WA"]}}]}]},
               "sort":[{"key":"state","order":"DESC"},{"key":"person.id"}],
               "page":{"limit":3,"token":"6"}}"#,
        )
        .unwrap();
        assert_eq!(
            query.filter,
            Some(Filter::Or(vec![
                Filter::Compare {
                    op: CompareOp::Eq,
                    path: path("person.org"),
                    value: Scalar::String("Dev Ops".into()),
                },
                Filter::And(vec![
                    Filter::Compare {
                        op: CompareOp::Eq,
                        path: path("person.org"),
                        value: Scalar::String("Finance".into()),
                    },
                    Filter::In {
                        path: path("state"),
                        values: vec![Scalar::String("CA".into()), Scalar::String("WA".into())],
                    },
                ]),
            ]))
        );
        assert_eq!(
            query.sort,
            vec![
                SortKey {
                    path: path("state"),
                    descending: true
                },
                SortKey {
                    path: path("person.id"),
                    descending: false
                },
            ]
        );
        assert_eq!(
            (query.limit, query.offset, query.fetch()),
            (Some(3), 6, Some(4))
        );
    }

    #[test]
    fn empty_parts_mean_everything() {
        for text in [
            r#"{}"#,
            r#"{"filter":{}}"#,
            r#"{"page":{"limit":0,"token":""}}"#,
        ] {
            assert_eq!(Query::parse(text).unwrap(), Query::default(), "{text}");
        }
    }

    #[test]
    fn bad_queries_say_why() {
        let cases = [
            ("not json", "parse JSON"),
            ("[]", "JSON object"),
            (
                r#"{"filter":{"EQ":{"a":1},"IN":{"b":[1]}}}"#,
                "single element",
            ),
            (
                r#"{"filter":{"LIKE":{"a":"x"}}}"#,
                "unsupported filter \"LIKE\"",
            ),
            (r#"{"filter":{"EQ":{"a":1,"b":2}}}"#, "single key/value"),
            (r#"{"filter":{"EQ":{"a":{"x":1}}}}"#, "scalar"),
            (r#"{"filter":{"IN":{"a":"x"}}}"#, "must be an array"),
            (r#"{"filter":{"AND":[]}}"#, "at least one"),
            (r#"{"filter":{"OR":{"EQ":{"a":1}}}}"#, "must be an array"),
            (r#"{"filter":{"GT":{"a":true}}}"#, "number or a string"),
            (r#"{"filter":{"EQ":{"a..b":1}}}"#, "empty path segment"),
            (r#"{"filter":{"EQ":{"a'b":1}}}"#, "not allowed"),
            (
                r#"{"sort":[{"key":"a","order":"UP"}]}"#,
                "neither ASC nor DESC",
            ),
            (r#"{"sort":[{"order":"ASC"}]}"#, "'key'"),
            (r#"{"page":{"limit":-1}}"#, "whole number"),
            (
                r#"{"page":{"limit":2,"token":"abc"}}"#,
                "invalid page token",
            ),
            (r#"{"page":{"limit":18446744073709551615}}"#, "whole number"),
            (
                r#"{"page":{"token":"9223372036854775808"}}"#,
                "invalid page token",
            ),
        ];
        for (text, expected) in cases {
            let err = Query::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn pages_carry_a_token_only_when_more_follow() {
        let item = |key: &str| QueryItem {
            key: key.into(),
            data: Bytes::from_static(b"{}"),
            etag: None,
        };
        let query = Query {
            limit: Some(2),
            offset: 4,
            ..Query::default()
        };
        let page = QueryResponse::page(&query, vec![item("a"), item("b"), item("c")]);
        assert_eq!(page.results.len(), 2);
        assert_eq!(page.token.as_deref(), Some("6"));
        let last = QueryResponse::page(&query, vec![item("a")]);
        assert_eq!((last.results.len(), last.token), (1, None));
        let all = QueryResponse::page(&Query::default(), vec![item("a"), item("b")]);
        assert_eq!((all.results.len(), all.token), (2, None));
    }
}
