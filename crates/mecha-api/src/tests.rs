//! The API layer's rules, on a real in-memory store.

use std::sync::Arc;

use mecha_component_memory::STATE_IN_MEMORY;
use mecha_core::GrpcCode;
use mecha_resources::Component;
use mecha_runtime::{Registry, Runtime, RuntimeInfo, plan};
use mecha_state::{DeleteRequest, Metadata, SetRequest};

use crate::state::TransactionOperation;
use crate::*;

async fn api_with(stores: &[&str], token: Option<&str>) -> Api {
    let mut registry = Registry::new();
    registry.register::<mecha_state::StateBlock>(STATE_IN_MEMORY);
    let info = RuntimeInfo {
        app_id: "app".into(),
        api_token: token.map(str::to_owned),
        runtime_version: "test".into(),
        ..RuntimeInfo::default()
    };
    let components: Vec<Component> = stores
        .iter()
        .map(|name| Component {
            name: (*name).into(),
            namespace: None,
            type_name: "state.in-memory".into(),
            version: "v1".into(),
            init_timeout: std::time::Duration::from_secs(1),
            ignore_errors: false,
            metadata: vec![],
            secret_store: None,
            scopes: vec![],
            file: "x.yaml".into(),
        })
        .collect();
    let (plan, report) = plan(&components, &registry, &info, Default::default());
    assert!(report.is_ok());
    let runtime = Runtime::new(info);
    runtime.set_components(plan.build().await.unwrap());
    Api::new(runtime, Handles::default())
}

#[tokio::test]
async fn unknown_store_is_not_found_or_not_configured() {
    let api = api_with(&["s"], None).await;
    let err = api.save_state("nope", vec![]).await.unwrap_err();
    assert_eq!(
        (err.code, err.http_status, err.grpc_code),
        ("ERR_STATE_STORE_NOT_FOUND", 400, GrpcCode::InvalidArgument)
    );
    assert_eq!(err.reason, Some("DAPR_STATE_NOT_FOUND"));
    assert_eq!(
        err.info_metadata()
            .unwrap()
            .get("appID")
            .map(String::as_str),
        Some("app")
    );
    assert_eq!(err.message, "state store nope is not found");

    let api = api_with(&[], None).await;
    let err = api.save_state("nope", vec![]).await.unwrap_err();
    assert_eq!(
        (err.code, err.http_status),
        ("ERR_STATE_STORE_NOT_CONFIGURED", 500)
    );
}

#[tokio::test]
async fn illegal_keys_carry_rich_details() {
    let api = api_with(&["s"], None).await;
    let err = api
        .save_state("s", vec![SetRequest::new("a||b", "1")])
        .await
        .unwrap_err();
    assert_eq!((err.code, err.http_status), ("ERR_MALFORMED_REQUEST", 400));
    assert_eq!(err.reason, Some("DAPR_STATE_ILLEGAL_KEY"));
    assert_eq!(err.resource().unwrap().resource_name, "s");
    assert_eq!(err.field_violation().unwrap().field, "a||b");
}

#[tokio::test]
async fn etag_errors_map_per_operation() {
    let api = api_with(&["s"], None).await;
    api.save_state("s", vec![SetRequest::new("k", "1")])
        .await
        .unwrap();
    let item = api
        .get_state("s", "k", Default::default(), Metadata::new())
        .await
        .unwrap()
        .unwrap();
    let stale = item.etag.unwrap();
    api.save_state("s", vec![SetRequest::new("k", "2")])
        .await
        .unwrap();

    let err = api
        .save_state("s", vec![SetRequest::new("k", "3").with_etag(&stale)])
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.http_status, err.grpc_code),
        ("ERR_STATE_SAVE", 409, GrpcCode::Aborted)
    );
    assert!(
        err.message
            .starts_with("failed saving state in state store s: possible etag mismatch")
    );

    let err = api
        .delete_state("s", DeleteRequest::new("k").with_etag("garbage"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.http_status, err.grpc_code),
        ("ERR_STATE_DELETE", 400, GrpcCode::InvalidArgument)
    );

    let op = |operation: &str, key: &str| TransactionOperation {
        operation: operation.into(),
        item: SetRequest::new(key, "v"),
    };
    let err = api
        .execute_state_transaction(
            "s",
            vec![op("upsert", "a"), op("merge", "b")],
            Metadata::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.http_status),
        ("ERR_NOT_SUPPORTED_STATE_OPERATION", 400)
    );
    assert!(
        api.get_state("s", "a", Default::default(), Metadata::new())
            .await
            .unwrap()
            .is_none()
    );

    let mut stale_delete = op("delete", "k");
    stale_delete.item.etag = Some(stale);
    let err = api
        .execute_state_transaction("s", vec![op("upsert", "a"), stale_delete], Metadata::new())
        .await
        .unwrap_err();
    // daprd answers any failed transaction with 500 INTERNAL.
    assert_eq!(
        (err.code, err.http_status, err.grpc_code),
        ("ERR_STATE_TRANSACTION", 500, GrpcCode::Internal)
    );
}

#[tokio::test]
async fn bad_ttl_fails_the_save_as_in_daprd() {
    let api = api_with(&["s"], None).await;
    let err = api
        .save_state(
            "s",
            vec![SetRequest::new("k", "1").with_metadata("ttlInSeconds", "soon")],
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.http_status, err.grpc_code),
        ("ERR_STATE_SAVE", 500, GrpcCode::Internal)
    );
    assert!(err.message.contains("ttlInSeconds"), "{}", err.message);
}

#[tokio::test]
async fn bulk_get_keeps_order_and_reports_missing_items() {
    let api = api_with(&["s"], None).await;
    api.save_state(
        "s",
        vec![SetRequest::new("a", "1"), SetRequest::new("b", "2")],
    )
    .await
    .unwrap();
    let items = api
        .get_bulk_state(
            "s",
            vec!["b".into(), "x".into(), "a".into()],
            0,
            Metadata::new(),
        )
        .await
        .unwrap();
    let got: Vec<(&str, Option<&[u8]>)> = items
        .iter()
        .map(|i| (i.key.as_str(), i.data.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![("b", Some(&b"2"[..])), ("x", None), ("a", Some(&b"1"[..]))]
    );
    let err = api
        .get_bulk_state("s", vec!["a||b".into()], 1, Metadata::new())
        .await
        .unwrap_err();
    assert_eq!(err.reason, Some("DAPR_STATE_ILLEGAL_KEY"));
}

#[tokio::test]
async fn tokens_health_and_metadata() {
    let api = api_with(&["s"], Some("secret")).await;
    let admit = |api: &Api, method: http::Method, path: &str, token: Option<&'static str>| {
        let mut headers = http::HeaderMap::new();
        if let Some(token) = token {
            headers.insert("dapr-api-token", http::HeaderValue::from_static(token));
        }
        api.admit(Transport::Http, &method, path, path, &headers)
            .map(|call| call.admission)
            .map_err(|refused| refused.detail)
    };
    let get = http::Method::GET;
    assert_eq!(
        admit(&api, get.clone(), "/v1.0/metadata", Some("secret")),
        Ok(Admission::Token)
    );
    for wrong in ["secreT", "secret-longer", ""] {
        assert_eq!(
            admit(&api, get.clone(), "/v1.0/metadata", Some(wrong)),
            Err("authentication error: api token mismatch"),
            "{wrong}"
        );
    }
    assert_eq!(
        admit(&api, get.clone(), "/v1.0/metadata", None),
        Err("missing api token in request metadata")
    );
    assert_eq!(
        admit(&api, get.clone(), "/v1.0/healthz", None),
        Ok(Admission::Exempt)
    );
    assert_eq!(
        admit(&api_with(&[], None).await, get, "/v1.0/metadata", None),
        Ok(Admission::Open)
    );
    let refused = Refused {
        detail: "missing api token in request metadata",
    }
    .error();
    assert_eq!(
        (refused.http_status, refused.grpc_code),
        (401, GrpcCode::Unauthenticated)
    );
    assert_eq!(refused.message, "Unauthorized");

    assert_eq!(
        api.outbound_healthz().unwrap_err().code,
        "ERR_OUTBOUND_HEALTH_NOT_READY"
    );
    api.runtime().set_api_ready();
    assert_eq!(
        api.healthz().unwrap_err().code,
        "ERR_HEALTH_NOT_READY",
        "not ready before every service started"
    );
    api.runtime().set_started();
    api.healthz().unwrap();
    api.outbound_healthz().unwrap();
    assert!(api.check_app_id("app").is_ok());
    assert_eq!(
        api.check_app_id("other").unwrap_err().code,
        "ERR_HEALTH_APPID_NOT_MATCH"
    );

    api.set_metadata("color", "blue".into()).unwrap();
    let meta = api.metadata();
    assert_eq!(meta.id, "app");
    assert_eq!(meta.extended.get("color").map(String::as_str), Some("blue"));
    assert_eq!(
        meta.components[0].capabilities,
        vec!["ETAG", "TRANSACTIONAL", "TTL", "QUERY_API", "ACTOR"]
    );

    api.shutdown();
    assert!(api.healthz().is_err(), "not ready while shutting down");
    let runtime: &Arc<Runtime> = api.runtime();
    tokio::time::timeout(
        std::time::Duration::from_secs(1),
        runtime.shutdown_requested(),
    )
    .await
    .expect("shutdown is signalled");
}
