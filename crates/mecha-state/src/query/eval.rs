//! Queries evaluated in the process, for stores without a query language
//! of their own (the in-memory store), with the semantics of the module
//! documentation; the SQL translation in [`super::sql`] must agree with it.

use std::cmp::Ordering;

use serde_json::Value;

use super::*;

/// Runs a query over items (stored keys), returning the requested page.
pub fn evaluate(req: &QueryRequest, items: impl IntoIterator<Item = QueryItem>) -> QueryResponse {
    let query = &req.query;
    let mut matched: Vec<(QueryItem, Value)> = items
        .into_iter()
        .filter(|item| {
            req.key_prefix
                .as_deref()
                .is_none_or(|prefix| item.key.starts_with(prefix))
        })
        .filter_map(|item| {
            let doc: Value = serde_json::from_slice(&item.data).ok()?;
            let keep = query.filter.as_ref().is_none_or(|f| matches(f, &doc));
            keep.then_some((item, doc))
        })
        .collect();
    matched.sort_by(|(a, a_doc), (b, b_doc)| {
        for key in &query.sort {
            let order = compare_sort(lookup(a_doc, &key.path), lookup(b_doc, &key.path), key);
            if order != Ordering::Equal {
                return order;
            }
        }
        a.key.as_bytes().cmp(b.key.as_bytes())
    });
    let rows = matched
        .into_iter()
        .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
        .take(query.fetch().map_or(usize::MAX, |n| n as usize))
        .map(|(item, _)| item)
        .collect();
    QueryResponse::page(query, rows)
}

fn lookup<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(doc, |value, key| value.as_object()?.get(key))
}

fn matches(filter: &Filter, doc: &Value) -> bool {
    match filter {
        Filter::Compare { op, path, value } => compare(*op, lookup(doc, path), value),
        Filter::In { path, values } => {
            let found = lookup(doc, path);
            values.iter().any(|v| equals(found, v))
        }
        Filter::And(filters) => filters.iter().all(|f| matches(f, doc)),
        Filter::Or(filters) => filters.iter().any(|f| matches(f, doc)),
    }
}

fn equals(found: Option<&Value>, wanted: &Scalar) -> bool {
    match (found, wanted) {
        (Some(Value::Null), Scalar::Null) => true,
        (Some(Value::Bool(a)), Scalar::Bool(b)) => a == b,
        (Some(Value::Number(a)), Scalar::Number(b)) => a.as_f64() == Some(*b),
        (Some(Value::String(a)), Scalar::String(b)) => a == b,
        _ => false,
    }
}

fn compare(op: CompareOp, found: Option<&Value>, wanted: &Scalar) -> bool {
    let order = match (found, wanted) {
        (_, _) if op == CompareOp::Eq => return equals(found, wanted),
        (None, _) => return false,
        (Some(_), _) if op == CompareOp::Neq => return !equals(found, wanted),
        (Some(Value::Number(a)), Scalar::Number(b)) => a.as_f64().and_then(|a| a.partial_cmp(b)),
        (Some(Value::String(a)), Scalar::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        _ => None,
    };
    let Some(order) = order else {
        return false;
    };
    match op {
        CompareOp::Gt => order == Ordering::Greater,
        CompareOp::Gte => order != Ordering::Less,
        CompareOp::Lt => order == Ordering::Less,
        CompareOp::Lte => order != Ordering::Greater,
        CompareOp::Eq | CompareOp::Neq => unreachable!("handled above"),
    }
}

/// The type order of sorting: numbers, strings, booleans, null, objects and
/// arrays, missing.
fn rank(value: Option<&Value>) -> u8 {
    match value {
        Some(Value::Number(_)) => 0,
        Some(Value::String(_)) => 1,
        Some(Value::Bool(_)) => 2,
        Some(Value::Null) => 3,
        Some(Value::Object(_) | Value::Array(_)) => 4,
        None => 5,
    }
}

fn compare_sort(a: Option<&Value>, b: Option<&Value>, key: &SortKey) -> Ordering {
    let by_type = rank(a).cmp(&rank(b));
    if by_type != Ordering::Equal {
        return by_type;
    }
    let by_value = match (a, b) {
        (Some(Value::Number(a)), Some(Value::Number(b))) => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(a)), Some(Value::String(b))) => a.as_bytes().cmp(b.as_bytes()),
        // As text, the way SQL stores order them: "false" < "true".
        (Some(Value::Bool(a)), Some(Value::Bool(b))) => a.cmp(b),
        _ => Ordering::Equal,
    };
    if key.descending {
        by_value.reverse()
    } else {
        by_value
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn item(key: &str, data: &str) -> QueryItem {
        QueryItem {
            key: key.into(),
            data: Bytes::copy_from_slice(data.as_bytes()),
            etag: None,
        }
    }

    fn run(query: &str, items: &[(&str, &str)]) -> (Vec<String>, Option<String>) {
        let req = QueryRequest {
            query: Query::parse(query).unwrap(),
            key_prefix: Some("app||".into()),
            ..QueryRequest::default()
        };
        let page = evaluate(&req, items.iter().map(|(k, v)| item(k, v)));
        (
            page.results.into_iter().map(|i| i.key).collect(),
            page.token,
        )
    }

    const ITEMS: &[(&str, &str)] = &[
        ("app||1", r#"{"n":1,"s":"b","t":true}"#),
        ("app||2", r#"{"n":2.0,"s":"a"}"#),
        ("app||3", r#"{"n":"2","s":"B","t":false}"#),
        ("app||4", r#"{"s":null}"#),
        ("app||5", "not json"),
        ("other||6", r#"{"n":1}"#),
    ];

    #[test]
    fn typed_comparisons() {
        let keys = |q| run(q, ITEMS).0;
        assert_eq!(keys(r#"{"filter":{"EQ":{"n":2}}}"#), ["app||2"]);
        assert_eq!(keys(r#"{"filter":{"EQ":{"n":"2"}}}"#), ["app||3"]);
        assert_eq!(keys(r#"{"filter":{"EQ":{"s":null}}}"#), ["app||4"]);
        assert_eq!(keys(r#"{"filter":{"EQ":{"t":false}}}"#), ["app||3"]);
        assert_eq!(keys(r#"{"filter":{"NEQ":{"n":1}}}"#), ["app||2", "app||3"]);
        assert_eq!(keys(r#"{"filter":{"GT":{"n":1}}}"#), ["app||2"]);
        assert_eq!(
            keys(r#"{"filter":{"LTE":{"s":"a"}}}"#),
            ["app||2", "app||3"]
        );
        assert_eq!(
            keys(r#"{"filter":{"IN":{"s":["a","b"]}}}"#),
            ["app||1", "app||2"]
        );
        assert_eq!(keys(r#"{"filter":{"IN":{"s":[]}}}"#), Vec::<String>::new());
        assert_eq!(
            keys(
                r#"{"filter":{"OR":[{"EQ":{"n":1}},{"AND":[{"EQ":{"s":"B"}},{"EQ":{"t":false}}]}]}}"#
            ),
            ["app||1", "app||3"]
        );
        assert_eq!(
            keys(r#"{}"#),
            ["app||1", "app||2", "app||3", "app||4"],
            "no filter: every JSON item of the app"
        );
    }

    #[test]
    fn sorting_by_type_then_value_then_key() {
        let keys = |q| run(q, ITEMS).0;
        // n: numbers 1, 2.0; string "2"; missing.
        assert_eq!(
            keys(r#"{"sort":[{"key":"n"}]}"#),
            ["app||1", "app||2", "app||3", "app||4"]
        );
        assert_eq!(
            keys(r#"{"sort":[{"key":"n","order":"DESC"}]}"#),
            ["app||2", "app||1", "app||3", "app||4"]
        );
        // s: "B" < "a" < "b" byte-wise, then null.
        assert_eq!(
            keys(r#"{"sort":[{"key":"s"}]}"#),
            ["app||3", "app||2", "app||1", "app||4"]
        );
    }

    #[test]
    fn pages() {
        let q = |token: &str| {
            format!(r#"{{"sort":[{{"key":"s"}}],"page":{{"limit":3,"token":"{token}"}}}}"#)
        };
        assert_eq!(
            run(&q(""), ITEMS),
            (
                vec!["app||3".into(), "app||2".into(), "app||1".into()],
                Some("3".into())
            )
        );
        assert_eq!(run(&q("3"), ITEMS), (vec!["app||4".into()], None));
        assert_eq!(run(&q("9"), ITEMS), (vec![], None));
    }
}
