//! The configuration API through the real binary: get, HTTP subscriptions
//! pushed to an HTTP app, gRPC subscription streams, unsubscribe, and the
//! errors, on `configuration.redis` and `configuration.postgresql` loaded
//! from Dapr component files. Items are written to the backends directly,
//! as an operator would.

use std::time::Duration;

use futures::StreamExt;
use mecha_core::testing::{service_available, service_url, unique};
use mecha_proto::runtime as pb;
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;
use tonic::Code;

use crate::apps::App;
use crate::harness::{Options, Resources, Sidecar};

async fn get(sidecar: &Sidecar, path: &str) -> (u16, Value) {
    let response = reqwest::get(sidecar.http(path)).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn redis_set(address: &str, key: &str, value: Option<&str>) {
    let mut conn = redis::Client::open(format!("redis://{address}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let command = match value {
        Some(value) => {
            let mut set = redis::cmd("SET");
            set.arg(key).arg(value);
            set
        }
        None => {
            let mut del = redis::cmd("DEL");
            del.arg(key);
            del
        }
    };
    let _: redis::Value = command.query_async(&mut conn).await.unwrap();
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_configuration_over_http_and_grpc() {
    let redis = service_url("redis", "127.0.0.1:6379");
    if !service_available("Redis", &redis) {
        return;
    }
    let app = App::http(0).await;
    let resources =
        Resources::new().component("cfg", "configuration.redis", &[("redisHost", &redis)]);
    let sidecar = Sidecar::start_with(
        resources,
        Options {
            args: vec!["--app-port".into(), app.port.to_string()],
            ..Options::default()
        },
    );
    let (a, b) = (unique("cfg-a"), unique("cfg-b"));
    redis_set(&redis, &a, Some("alpha||1")).await;
    redis_set(&redis, &b, Some("beta")).await;
    let (status, items) = get(
        &sidecar,
        &format!("/v1.0/configuration/cfg?key={a}&key={b}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        items,
        json!({&a: {"value": "alpha", "version": "1"}, &b: {"value": "beta"}})
    );
    let (status, alpha) = get(&sidecar, &format!("/v1.0-alpha1/configuration/cfg?key={a}")).await;
    assert_eq!((status, alpha[&a]["value"].clone()), (200, json!("alpha")));
    let (status, _) = get(&sidecar, "/v1.0/configuration/cfg?key=no-such-key-at-all").await;
    assert_eq!(status, 204, "no items is 204");

    // HTTP: changes are pushed to the app, one POST per key.
    let (status, answer) = get(
        &sidecar,
        &format!("/v1.0/configuration/cfg/subscribe?key={a}"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();
    redis_set(&redis, &a, Some("changed||2")).await;
    let path = format!("/configuration/cfg/{a}");
    eventually("the update reaches the app", || {
        app.state.events().iter().any(|e| e.path == path)
    })
    .await;
    let update = app
        .state
        .events()
        .into_iter()
        .find(|e| e.path == path)
        .unwrap();
    assert_eq!(
        update.event,
        json!({"id": id, "items": {&a: {"value": "changed", "version": "2"}}})
    );
    let (status, answer) = get(
        &sidecar,
        &format!("/v1.0/configuration/cfg/{id}/unsubscribe"),
    )
    .await;
    assert_eq!((status, answer), (200, json!({"ok": true})));
    let seen = app.state.events().len();
    redis_set(&redis, &a, Some("after||3")).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        app.state.events().len(),
        seen,
        "nothing after unsubscribing"
    );
    let (status, answer) = get(
        &sidecar,
        &format!("/v1.0-alpha1/configuration/cfg/{id}/unsubscribe"),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(answer.get("ok"), None, "daprd leaves out a false ok");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );

    // gRPC: a stream whose first message is the id alone.
    let mut grpc = sidecar.grpc().await;
    let mut stream = grpc
        .subscribe_configuration_alpha1(pb::SubscribeConfigurationRequest {
            store_name: "cfg".into(),
            keys: vec![b.clone()],
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.id.is_empty() && first.items.is_empty());
    redis_set(&redis, &b, None).await;
    let update = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(update.id, first.id);
    assert_eq!(update.items[&b].value, "", "a deleted key is an empty item");
    let answer = grpc
        .unsubscribe_configuration(pb::UnsubscribeConfigurationRequest {
            store_name: "cfg".into(),
            id: first.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.ok);
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap();
    assert!(
        end.is_none_or(|m| m.is_err()),
        "unsubscribing ends the stream"
    );
    let answer = grpc
        .unsubscribe_configuration(pb::UnsubscribeConfigurationRequest {
            store_name: "cfg".into(),
            id: "no-such-id".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.ok && answer.message.contains("does not exist"));
    let items = grpc
        .get_configuration(pb::GetConfigurationRequest {
            store_name: "cfg".into(),
            keys: vec![a.clone()],
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(items[&a].value, "after");

    // Errors.
    let (status, body) = get(&sidecar, "/v1.0/configuration/nope?key=a").await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (400, Some("ERR_CONFIGURATION_STORE_NOT_FOUND"))
    );
    let err = grpc
        .get_configuration(pb::GetConfigurationRequest {
            store_name: "nope".into(),
            keys: vec![],
            metadata: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    redis_set(&redis, &a, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_configuration_and_errors() {
    let pg = service_url("postgres", "127.0.0.1:5432");
    if !service_available("PostgreSQL", &pg) {
        return;
    }
    let (host, port) = pg.rsplit_once(':').unwrap();
    let table = format!("mecha_e2e_cfg_{}", std::process::id());
    let dsn = format!("host={host} port={port} user=postgres dbname=test sslmode=disable");
    let resources = Resources::new().component(
        "pgcfg",
        "configuration.postgresql",
        &[("connectionString", &dsn), ("table", &table)],
    );
    // No app: HTTP subscriptions have nowhere to go.
    let sidecar = Sidecar::with_resources(resources);
    let url = format!("postgres://postgres@{pg}/test?sslmode=disable");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let insert = |key: &'static str, value: &'static str, version: &'static str| {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {table} (key, value, version) VALUES ($1, $2, $3)"
        )))
        .bind(key)
        .bind(value)
        .bind(version)
    };
    insert("greeting", "hello", "1")
        .execute(&pool)
        .await
        .unwrap();
    let (status, items) = get(&sidecar, "/v1.0/configuration/pgcfg?key=greeting").await;
    assert_eq!(
        (status, items),
        (200, json!({"greeting": {"value": "hello", "version": "1"}}))
    );
    let mut grpc = sidecar.grpc().await;
    let mut stream = grpc
        .subscribe_configuration(pb::SubscribeConfigurationRequest {
            store_name: "pgcfg".into(),
            keys: vec!["greeting".into()],
            metadata: [(
                "pgNotifyChannel".to_owned(),
                format!("chan_{}", std::process::id()),
            )]
            .into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {table} SET value = 'hi', version = '2' WHERE key = 'greeting'"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let update = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (update.id, update.items["greeting"].value.as_str()),
        (first.id, "hi")
    );
    drop(stream);

    let err = grpc
        .subscribe_configuration(pb::SubscribeConfigurationRequest {
            store_name: "pgcfg".into(),
            keys: vec![],
            metadata: Default::default(),
        })
        .await
        .map(|_| ())
        .expect_err("a channel is needed");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("pgNotifyChannel"),
        "{}",
        err.message()
    );
    let (status, body) = get(&sidecar, "/v1.0/configuration/pgcfg/subscribe?key=greeting").await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (500, Some("ERR_APP_CHANNEL_NIL"))
    );
    let bare = Sidecar::with_resources(crate::scenarios::two_stores());
    let (status, body) = get(&bare, "/v1.0/configuration/any?key=a").await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (500, Some("ERR_CONFIGURATION_STORE_NOT_CONFIGURED"))
    );
    drop(sidecar);
    sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
        .execute(&pool)
        .await
        .unwrap();
    // And the notifying function the subscription made.
    sqlx::query(AssertSqlSafe(format!(
        "DROP FUNCTION IF EXISTS mecha_config_notify_{table}_chan_{}()",
        std::process::id()
    )))
    .execute(&pool)
    .await
    .unwrap();
}
