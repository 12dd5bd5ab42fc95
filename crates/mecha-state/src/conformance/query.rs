//! The query cases of the state suite: the same queries over the same
//! documents must give the same results, in the same order, on every store
//! that declares [`Feature::QueryApi`]; every other store must refuse them.

use super::*;

/// The documents every query case starts from. `n` mixes numbers, a
/// string, null and a missing field; `city` mixes upper and lower case, so
/// a store comparing text by a case-insensitive collation is caught.
const DOCS: &[(&str, &str)] = &[
    (
        "p1",
        r#"{"person":{"org":"Dev Ops","id":1036},"city":"Seattle","state":"WA","n":5,"tags":["x","y"]}"#,
    ),
    (
        "p2",
        r#"{"person":{"org":"Hardware","id":1028},"city":"Portland","state":"OR","n":2.5}"#,
    ),
    (
        "p3",
        r#"{"person":{"org":"Finance","id":1071},"city":"Sacramento","state":"CA","n":-1}"#,
    ),
    (
        "p4",
        r#"{"person":{"org":"Dev Ops","id":1042},"city":"Spokane","state":"WA","n":"5"}"#,
    ),
    (
        "p5",
        r#"{"person":{"org":"Finance","id":1007},"city":"san Francisco","state":"CA","active":true}"#,
    ),
    (
        "p6",
        r#"{"person":{"org":"Dev Ops","id":1015},"city":"Los Angeles","state":"CA","active":false,"n":null}"#,
    ),
];

/// A store holding [`DOCS`], plus a binary value and a text value that is
/// not JSON (neither may ever be a result); `None` when the case is over,
/// either skipped or after checking that a store without the capability
/// refuses queries.
async fn seeded(harness: &impl Harness) -> Option<KeyedStateStore> {
    let store = store(harness).await?;
    if !store.has(Feature::QueryApi) {
        let err = store.query("{}", Metadata::new()).await.unwrap_err();
        assert!(
            matches!(err, StateError::Unsupported(Feature::QueryApi)),
            "{err}"
        );
        return None;
    }
    let mut items: Vec<SetRequest> = DOCS
        .iter()
        .map(|(key, doc)| SetRequest::new(*key, value(doc)))
        .collect();
    items.push(SetRequest::new("bin", Bytes::from_static(&[0xff, 0, 1])));
    items.push(SetRequest::new("txt", value("plain text")));
    store.save(items).await.unwrap();
    Some(store)
}

async fn run(store: &KeyedStateStore, query: &str) -> QueryResponse {
    store
        .query(query, Metadata::new())
        .await
        .unwrap_or_else(|err| panic!("{query}: {err}"))
}

async fn keys(store: &KeyedStateStore, query: &str) -> Vec<String> {
    let page = run(store, query).await;
    assert_eq!(page.token, None, "{query}: one page holds every result");
    page.results.into_iter().map(|item| item.key).collect()
}

fn filter(filter: &str) -> String {
    format!(r#"{{"filter":{filter}}}"#)
}

/// EQ, IN, AND and OR; results carry the stored value and its etag.
pub async fn query_filters(harness: &impl Harness) {
    let Some(store) = seeded(harness).await else {
        return;
    };
    let cases = [
        (r#"{"EQ":{"person.org":"Dev Ops"}}"#, vec!["p1", "p4", "p6"]),
        (r#"{"EQ":{"state":"CA"}}"#, vec!["p3", "p5", "p6"]),
        (
            r#"{"IN":{"state":["CA","OR"]}}"#,
            vec!["p2", "p3", "p5", "p6"],
        ),
        (r#"{"IN":{"state":["TX"]}}"#, vec![]),
        (
            r#"{"AND":[{"EQ":{"person.org":"Finance"}},{"EQ":{"state":"CA"}}]}"#,
            vec!["p3", "p5"],
        ),
        (
            r#"{"OR":[{"EQ":{"city":"Seattle"}},{"AND":[{"EQ":{"person.org":"Dev Ops"}},{"IN":{"state":["CA","NV"]}}]}]}"#,
            vec!["p1", "p6"],
        ),
        (r#"{"EQ":{"person.missing":"x"}}"#, vec![]),
        (r#"{"EQ":{"city.name":"Seattle"}}"#, vec![]),
        // A path steps into objects only, never into an array.
        (r#"{"EQ":{"tags.0":"x"}}"#, vec![]),
    ];
    for (f, expected) in cases {
        assert_eq!(keys(&store, &filter(f)).await, expected, "{f}");
    }
    assert_eq!(
        keys(&store, "{}").await,
        ["p1", "p2", "p3", "p4", "p5", "p6"],
        "no filter: every JSON value, and never a binary or text one"
    );
    let page = run(&store, &filter(r#"{"EQ":{"city":"Seattle"}}"#)).await;
    let [item] = page.results.as_slice() else {
        panic!("one result: {page:?}");
    };
    assert_data(&store, &item.data, &value(DOCS[0].1));
    if store.has(Feature::Etag) {
        assert_eq!(
            item.etag.as_deref(),
            Some(etag_of(&store, "p1").await.as_str())
        );
    }
}

/// Comparisons are typed: numbers by value, strings byte for byte, and
/// null, booleans and missing fields apart.
pub async fn query_typed_comparisons(harness: &impl Harness) {
    let Some(store) = seeded(harness).await else {
        return;
    };
    let cases = [
        (r#"{"EQ":{"n":5}}"#, vec!["p1"]),
        (r#"{"EQ":{"n":5.0}}"#, vec!["p1"]),
        (r#"{"EQ":{"n":"5"}}"#, vec!["p4"]),
        (r#"{"EQ":{"n":2.5}}"#, vec!["p2"]),
        (r#"{"EQ":{"n":null}}"#, vec!["p6"]),
        (r#"{"EQ":{"active":true}}"#, vec!["p5"]),
        (r#"{"EQ":{"active":false}}"#, vec!["p6"]),
        (r#"{"EQ":{"city":"san Francisco"}}"#, vec!["p5"]),
        (r#"{"EQ":{"city":"SAN FRANCISCO"}}"#, vec![]),
        (r#"{"IN":{"n":[5,"5",null]}}"#, vec!["p1", "p4", "p6"]),
        // Strings before numbers, several of each, and a filter around it:
        // every value is compared with its own kind.
        (
            r#"{"AND":[{"EQ":{"city":"Seattle"}},{"IN":{"n":["5",7,"x",5]}}]}"#,
            vec!["p1"],
        ),
        (r#"{"IN":{"n":["5","nope",2.5,99]}}"#, vec!["p2", "p4"]),
        (r#"{"NEQ":{"state":"CA"}}"#, vec!["p1", "p2", "p4"]),
        (r#"{"NEQ":{"active":true}}"#, vec!["p6"]),
        (r#"{"GT":{"person.id":1040}}"#, vec!["p3", "p4"]),
        (r#"{"GTE":{"person.id":1042}}"#, vec!["p3", "p4"]),
        (r#"{"LTE":{"n":2.5}}"#, vec!["p2", "p3"]),
        (r#"{"LT":{"n":-1}}"#, vec![]),
        (r#"{"GTE":{"city":"S"}}"#, vec!["p1", "p3", "p4", "p5"]),
        (r#"{"LT":{"city":"San"}}"#, vec!["p2", "p3", "p6"]),
        (
            r#"{"AND":[{"GT":{"person.id":1000}},{"LT":{"person.id":1030}}]}"#,
            vec!["p2", "p5", "p6"],
        ),
    ];
    for (f, expected) in cases {
        assert_eq!(keys(&store, &filter(f)).await, expected, "{f}");
    }
}

/// Sorting by one or several keys, up or down, over mixed types.
pub async fn query_sorting(harness: &impl Harness) {
    let Some(store) = seeded(harness).await else {
        return;
    };
    let cases = [
        (
            r#"[{"key":"person.id"}]"#,
            vec!["p5", "p6", "p2", "p1", "p4", "p3"],
        ),
        (
            r#"[{"key":"person.id","order":"DESC"}]"#,
            vec!["p3", "p4", "p1", "p2", "p6", "p5"],
        ),
        (
            r#"[{"key":"state","order":"DESC"},{"key":"person.id","order":"ASC"}]"#,
            vec!["p1", "p4", "p2", "p5", "p6", "p3"],
        ),
        // Numbers, then the string, then null, then the missing field.
        (r#"[{"key":"n"}]"#, vec!["p3", "p2", "p1", "p4", "p6", "p5"]),
        (
            r#"[{"key":"n","order":"DESC"}]"#,
            vec!["p1", "p2", "p3", "p4", "p6", "p5"],
        ),
        // Byte order: upper case before lower case.
        (
            r#"[{"key":"city"}]"#,
            vec!["p6", "p2", "p3", "p1", "p4", "p5"],
        ),
        // Equal sort values fall back to the key.
        (
            r#"[{"key":"person.org"}]"#,
            vec!["p1", "p4", "p6", "p3", "p5", "p2"],
        ),
    ];
    for (sort, expected) in cases {
        let query = format!(r#"{{"sort":{sort}}}"#);
        assert_eq!(keys(&store, &query).await, expected, "{sort}");
    }
    let query = r#"{"filter":{"EQ":{"state":"CA"}},"sort":[{"key":"person.id","order":"DESC"}]}"#;
    assert_eq!(keys(&store, query).await, ["p3", "p6", "p5"]);
}

/// `page.limit` and the token walk the results, with a token only while
/// more follow.
pub async fn query_paging(harness: &impl Harness) {
    let Some(store) = seeded(harness).await else {
        return;
    };
    let page_query = |limit: u64, token: &str| {
        format!(
            r#"{{"sort":[{{"key":"person.id"}}],"page":{{"limit":{limit},"token":"{token}"}}}}"#
        )
    };
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = run(&store, &page_query(4, &token)).await;
        pages += 1;
        assert!(page.results.len() <= 4);
        seen.extend(page.results.into_iter().map(|item| item.key));
        match page.token {
            Some(next) => token = next,
            None => break,
        }
        assert!(pages < 5, "the token moves on");
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, ["p5", "p6", "p2", "p1", "p4", "p3"]);

    let exact = run(&store, &page_query(6, "")).await;
    assert_eq!((exact.results.len(), exact.token), (6, None));
    let filtered = r#"{"filter":{"EQ":{"person.org":"Dev Ops"}},"sort":[{"key":"person.id"}],"page":{"limit":2}}"#;
    let first = run(&store, filtered).await;
    let first_keys: Vec<&str> = first.results.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(first_keys, ["p6", "p1"]);
    let token = first.token.expect("a second page follows");
    let next = filtered.replace(r#""limit":2"#, &format!(r#""limit":2,"token":"{token}""#));
    let second = run(&store, &next).await;
    let second_keys: Vec<&str> = second.results.iter().map(|i| i.key.as_str()).collect();
    assert_eq!((second_keys, second.token), (vec!["p4"], None));
}

/// A query sees only the app's own keys (returned as the app's keys) and
/// never an expired item.
pub async fn query_scope(harness: &impl Harness) {
    let Some(store) = seeded(harness).await else {
        return;
    };
    let other = KeyedStateStore::new(
        "conformance",
        store.component().clone(),
        KeyPrefix::AppId.scheme(&unique("other-app"), "conformance", None),
    );
    other
        .save(vec![SetRequest::new("p1", value(DOCS[0].1))])
        .await
        .unwrap();
    let seattle = filter(r#"{"EQ":{"city":"Seattle"}}"#);
    assert_eq!(keys(&store, &seattle).await, ["p1"]);
    assert_eq!(keys(&other, &seattle).await, ["p1"]);
    assert_eq!(keys(&other, "{}").await, ["p1"], "only the other app's key");
    if store.has(Feature::Ttl) {
        store
            .save(vec![
                SetRequest::new("brief", value(r#"{"city":"Seattle"}"#))
                    .with_metadata(TTL_METADATA_KEY, "1"),
            ])
            .await
            .unwrap();
        assert_eq!(keys(&store, &seattle).await, ["brief", "p1"]);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(
            keys(&store, &seattle).await,
            ["p1"],
            "an expired item is never a result"
        );
    }
}

/// Queries that do not parse are refused as such, before any work.
pub async fn query_invalid(harness: &impl Harness) {
    let Some(store) = seeded(harness).await else {
        return;
    };
    for query in [
        "not json",
        r#"{"filter":{"LIKE":{"city":"S%"}}}"#,
        r#"{"filter":{"EQ":{"city":"a","state":"b"}}}"#,
        r#"{"sort":[{"key":"city","order":"SIDEWAYS"}]}"#,
        r#"{"page":{"limit":2,"token":"not a token"}}"#,
    ] {
        let err = store.query(query, Metadata::new()).await.unwrap_err();
        assert!(matches!(err, StateError::InvalidQuery(_)), "{query}: {err}");
    }
}
