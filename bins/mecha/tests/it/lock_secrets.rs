//! Distributed locks and secrets through the real binary, over HTTP and
//! gRPC: the embedded `lockstore` shared by the runtimes of one host,
//! `lock.redis`, the local secret stores, secret scopes, and `secretKeyRef`.

use std::time::Duration;

use mecha_core::testing::{service_available, service_url};
use mecha_proto::runtime as pb;
use serde_json::{Value, json};
use tonic::Code;

use crate::harness::{Options, Resources, Sidecar};

async fn post(sidecar: &Sidecar, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(sidecar.http(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(sidecar: &Sidecar, path: &str) -> (u16, Value) {
    let response = reqwest::get(sidecar.http(path)).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn lock(resource: &str, owner: &str, expiry: i64) -> Value {
    json!({"resourceId": resource, "lockOwner": owner, "expiryInSeconds": expiry})
}

/// Owners race for one lock through two runtimes; exactly one wins.
async fn race(runtimes: &[&Sidecar], store: &str, resource: &str) -> String {
    let attempts = (0..12).map(|i| {
        let runtime = runtimes[i % runtimes.len()];
        async move {
            let owner = format!("owner-{i}");
            let (status, body) = post(
                runtime,
                &format!("/v1.0-alpha1/lock/{store}"),
                lock(resource, &owner, 30),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            (owner, body["success"].as_bool().unwrap())
        }
    });
    let winners: Vec<String> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|(_, won)| *won)
        .map(|(owner, _)| owner)
        .collect();
    assert_eq!(winners.len(), 1, "one winner: {winners:?}");
    winners.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_lockstore_is_shared_on_the_host() {
    let data = tempfile::tempdir().unwrap();
    let start = |app: &str| {
        Sidecar::start(Options {
            app_id: app.into(),
            data_dir: Some(data.path().to_owned()),
            ..Options::default()
        })
    };
    // The same app id on both: one app, two runtimes.
    let (a, b) = (start("locker"), start("locker"));
    let winner = race(&[&a, &b], "lockstore", "orders").await;
    // The owner's unlock works through either runtime; others are told.
    let (_, body) = post(
        &b,
        "/v1.0-alpha1/unlock/lockstore",
        json!({"resourceId": "orders", "lockOwner": "someone-else"}),
    )
    .await;
    assert_eq!(body, json!({"status": 2}));
    let (_, body) = post(
        &b,
        "/v1.0-alpha1/unlock/lockstore",
        json!({"resource_id": "orders", "lock_owner": winner}),
    )
    .await;
    assert_eq!(body, json!({"status": 0}));
    let (_, body) = post(
        &a,
        "/v1.0-alpha1/unlock/lockstore",
        json!({"resourceId": "orders", "lockOwner": winner}),
    )
    .await;
    assert_eq!(body, json!({"status": 1}), "released once");
    // Expiry: a lock of one second is free again after it.
    let (_, body) = post(&a, "/v1.0-alpha1/lock/lockstore", lock("brief", "x", 1)).await;
    assert_eq!(body, json!({"success": true}));
    let (_, body) = post(&b, "/v1.0-alpha1/lock/lockstore", lock("brief", "y", 1)).await;
    assert_eq!(
        body,
        json!({"success": false}),
        "unpopulated fields are emitted"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, body) = post(&b, "/v1.0-alpha1/lock/lockstore", lock("brief", "y", 30)).await;
    assert_eq!(body, json!({"success": true}));
    // daprd's key layout: lock||{appID}||{resourceId}.
    let db = rusqlite::Connection::open(data.path().join("lock.db")).unwrap();
    let keys: Vec<String> = db
        .prepare("SELECT key FROM locks ORDER BY key")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(keys.contains(&"lock||locker||brief".to_owned()), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_errors_and_grpc() {
    let sidecar = Sidecar::start(Options::default());
    let cases = [
        (
            lock("r", "o", 0),
            "lockstore",
            400,
            "ERR_MALFORMED_REQUEST",
            "ExpiryInSeconds is not positive",
        ),
        (
            lock("", "o", 5),
            "lockstore",
            400,
            "ERR_MALFORMED_REQUEST",
            "ResourceId is empty",
        ),
        (
            lock("r", "", 5),
            "lockstore",
            400,
            "ERR_MALFORMED_REQUEST",
            "LockOwner is empty",
        ),
        (
            lock("r", "o", 5),
            "nope",
            400,
            "ERR_LOCK_STORE_NOT_FOUND",
            "lock store nope not found",
        ),
        (
            lock("a||b", "o", 5),
            "lockstore",
            500,
            "ERR_TRY_LOCK",
            "can't contain '||'",
        ),
    ];
    for (body, store, status, code, message) in cases {
        let (got, answer) = post(
            &sidecar,
            &format!("/v1.0-alpha1/lock/{store}"),
            body.clone(),
        )
        .await;
        assert_eq!(
            (got, answer["errorCode"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains(message),
            "{answer}"
        );
    }
    let response = reqwest::Client::new()
        .post(sidecar.http("/v1.0-alpha1/lock/lockstore"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let mut grpc = sidecar.grpc().await;
    let taken = grpc
        .try_lock_alpha1(pb::TryLockRequest {
            store_name: "lockstore".into(),
            resource_id: "g".into(),
            lock_owner: "me".into(),
            expiry_in_seconds: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(taken.success);
    let unlock = |owner: &str| pb::UnlockRequest {
        store_name: "lockstore".into(),
        resource_id: "g".into(),
        lock_owner: owner.into(),
    };
    let status = grpc
        .unlock_alpha1(unlock("other"))
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        pb::unlock_response::Status::LockBelongsToOthers as i32
    );
    let status = grpc
        .unlock_alpha1(unlock("me"))
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, pb::unlock_response::Status::Success as i32);
    let err = grpc
        .try_lock_alpha1(pb::TryLockRequest {
            store_name: "nope".into(),
            resource_id: "g".into(),
            lock_owner: "me".into(),
            expiry_in_seconds: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // A runtime with no lock store at all.
    let bare = Sidecar::with_resources(crate::scenarios::two_stores());
    let (status, body) = post(&bare, "/v1.0-alpha1/lock/any", lock("r", "o", 5)).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (500, Some("ERR_LOCK_STORE_NOT_CONFIGURED"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_redis_between_two_runtimes() {
    let redis = service_url("redis", "127.0.0.1:6379");
    if !service_available("Redis", &redis) {
        return;
    }
    let resources =
        || Resources::new().component("redislock", "lock.redis", &[("redisHost", &redis)]);
    let app = format!("e2e-lock-{}", std::process::id());
    let start = || {
        Sidecar::start_with(
            resources(),
            Options {
                app_id: app.clone(),
                ..Options::default()
            },
        )
    };
    let (a, b) = (start(), start());
    let resource = format!("res-{}", std::process::id());
    let winner = race(&[&a, &b], "redislock", &resource).await;
    let (_, body) = post(
        &a,
        "/v1.0-alpha1/unlock/redislock",
        json!({"resourceId": resource, "lockOwner": winner}),
    )
    .await;
    assert_eq!(body, json!({"status": 0}));
}

fn secret_files(dir: &std::path::Path) -> String {
    let path = dir.join("secrets.json");
    std::fs::write(
        &path,
        json!({"db": {"password": "p4ss", "user": "admin"}, "token": "t0k3n", "hidden": "h"})
            .to_string(),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_over_both_transports_with_scopes() {
    let files = tempfile::tempdir().unwrap();
    let secrets = secret_files(files.path());
    let config = files.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: c\nspec:\n  secrets:\n    scopes:\n    - storeName: files\n      defaultAccess: allow\n      deniedSecrets: [hidden]\n",
    )
    .unwrap();
    let resources = Resources::new()
        .component(
            "files",
            "secretstores.local.file",
            &[("secretsFile", &secrets)],
        )
        .component(
            "multi",
            "secretstores.local.file",
            &[("secretsFile", &secrets), ("multiValued", "true")],
        )
        .component("env", "secretstores.local.env", &[("prefix", "MECHA_E2E_")]);
    let sidecar = Sidecar::start_with(
        resources,
        Options {
            args: vec!["--config".into(), config.to_string_lossy().into_owned()],
            env: vec![
                ("MECHA_E2E_API_KEY".into(), "from-env".into()),
                ("DAPR_SECRET_THING".into(), "never".into()),
            ],
            ..Options::default()
        },
    );
    assert_eq!(
        get(&sidecar, "/v1.0/secrets/files/token").await,
        (200, json!({"token": "t0k3n"}))
    );
    assert_eq!(
        get(&sidecar, "/v1.0/secrets/files/db:password").await,
        (200, json!({"db:password": "p4ss"}))
    );
    assert_eq!(
        get(&sidecar, "/v1.0/secrets/multi/db").await,
        (200, json!({"password": "p4ss", "user": "admin"}))
    );
    assert_eq!(
        get(&sidecar, "/v1.0/secrets/env/API_KEY").await,
        (200, json!({"API_KEY": "from-env"}))
    );
    let (status, bulk) = get(&sidecar, "/v1.0/secrets/files/bulk").await;
    assert_eq!(status, 200);
    assert_eq!(bulk["token"], json!({"token": "t0k3n"}));
    assert!(
        bulk.get("hidden").is_none(),
        "scopes filter bulk reads: {bulk}"
    );
    let (status, body) = get(&sidecar, "/v1.0/secrets/files/hidden").await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (403, Some("ERR_PERMISSION_DENIED")),
        "{body}"
    );
    let (status, body) = get(&sidecar, "/v1.0/secrets/files/nope").await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (500, Some("ERR_SECRET_GET"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("secret nope not found"),
        "{body}"
    );
    let (status, body) = get(&sidecar, "/v1.0/secrets/none/x").await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (401, Some("ERR_SECRET_STORE_NOT_FOUND"))
    );
    let (status, _) = get(&sidecar, "/v1.0/secrets/env/SECRET_THING").await;
    assert_eq!(status, 500, "DAPR_* variables are never secrets");

    let mut grpc = sidecar.grpc().await;
    let secret = grpc
        .get_secret(pb::GetSecretRequest {
            store_name: "multi".into(),
            key: "db".into(),
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(secret.data.get("user").map(String::as_str), Some("admin"));
    let bulk = grpc
        .get_bulk_secret(pb::GetBulkSecretRequest {
            store_name: "env".into(),
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bulk.data["API_KEY"].secrets["API_KEY"], "from-env");
    let err = grpc
        .get_secret(pb::GetSecretRequest {
            store_name: "files".into(),
            key: "hidden".into(),
            metadata: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = grpc
        .get_secret(pb::GetSecretRequest {
            store_name: "none".into(),
            key: "x".into(),
            metadata: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let bare = Sidecar::with_resources(crate::scenarios::two_stores());
    let (status, body) = get(&bare, "/v1.0/secrets/any/x").await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (500, Some("ERR_SECRET_STORES_NOT_CONFIGURED"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_read_their_secrets_through_secret_key_refs() {
    let files = tempfile::tempdir().unwrap();
    let db = files.path().join("from-secret.db");
    let secrets = files.path().join("secrets.json");
    std::fs::write(
        &secrets,
        json!({"sqlite": {"path": db.to_string_lossy()}}).to_string(),
    )
    .unwrap();
    let store = |key: &str| {
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: guarded\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - name: connectionString\n    secretKeyRef:\n      name: sqlite\n      key: {key}\nauth:\n  secretStore: vault\n"
        )
    };
    let vault = |resources: Resources| {
        resources.component(
            "vault",
            "secretstores.local.file",
            &[
                ("secretsFile", &secrets.to_string_lossy()),
                ("multiValued", "true"),
            ],
        )
    };
    let sidecar =
        Sidecar::with_resources(vault(Resources::new().file("guarded.yaml", &store("path"))));
    let response = reqwest::Client::new()
        .post(sidecar.http("/v1.0/state/guarded"))
        .json(&json!([{"key": "k", "value": "v"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert!(db.exists(), "the store opened the file the secret named");
    drop(sidecar);
    let logs = Sidecar::expect_failure(vault(
        Resources::new().file("guarded.yaml", &store("missing")),
    ));
    assert!(
        logs.contains("cannot read secretKeyRef 'sqlite' (key 'missing')")
            && logs.contains("'vault'"),
        "{logs}"
    );
    let logs = Sidecar::expect_failure(Resources::new().file("guarded.yaml", &store("path")));
    assert!(
        logs.contains("secret store 'vault', which is not defined"),
        "{logs}"
    );
}
