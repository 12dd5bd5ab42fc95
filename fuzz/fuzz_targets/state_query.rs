//! The state query language: a query body parsed as every store parses it,
//! then run over a few documents as the stores without SQL run it.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mecha_state::query::{Query, QueryItem, QueryRequest, evaluate};

const DOCUMENTS: &[&str] = &[
    r#"{"person":{"org":"Dev Ops","id":1036},"city":"Seattle","state":"WA"}"#,
    r#"{"person":{"org":"Finance","id":1071},"city":"Sacramento","state":"CA"}"#,
    r#"{"person":{"org":"Dev Ops","id":1.5e3},"tags":["a",null,true],"state":null}"#,
    r#""just a string""#,
    r#"[1,2,{"person":{"id":7}}]"#,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(query) = Query::parse(text) else {
        return;
    };
    let items = DOCUMENTS.iter().enumerate().map(|(i, doc)| QueryItem {
        key: format!("app||k{i}"),
        data: Bytes::from_static(doc.as_bytes()),
        etag: None,
    });
    let request = QueryRequest {
        query,
        key_prefix: Some("app||".into()),
        metadata: Default::default(),
    };
    let _ = evaluate(&request, items);
});
