//! The state API on the real databases (Redis, PostgreSQL v1 and v2,
//! MySQL/MariaDB) loaded from Dapr component files, over HTTP and gRPC, and
//! the query API on both transports.

use std::time::{SystemTime, UNIX_EPOCH};

use mecha_core::testing::{service_available, service_url};
use mecha_proto::runtime as pb;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection as _};
use tonic::Code;
use tonic_types::StatusExt;

use crate::harness::{Options, Resources, Sidecar};
use crate::scenarios::{Grpc, Http, Transport, run_table};

fn suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}_{nanos:x}", std::process::id())
}

fn component(name: &str, type_name: &str, version: &str, metadata: &[(&str, String)]) -> String {
    let mut yaml = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: {type_name}\n  version: {version}\n  metadata:\n"
    );
    for (key, value) in metadata {
        yaml.push_str(&format!("  - name: {key}\n    value: \"{value}\"\n"));
    }
    yaml
}

struct Databases {
    stores: Vec<&'static str>,
    postgres: Option<String>,
    mysql: Option<String>,
    suffix: String,
}

impl Databases {
    /// Every reachable database as a state store, each on tables of its own.
    fn reachable() -> (Resources, Self) {
        let suffix = suffix();
        let mut resources = Resources::new();
        let mut stores = Vec::new();
        let redis = service_url("redis", "127.0.0.1:6379");
        if service_available("Redis", &redis) {
            resources = resources.file(
                "redis.yaml",
                &component("redis", "state.redis", "v1", &[("redisHost", redis)]),
            );
            stores.push("redis");
        }
        let pg = service_url("postgres", "127.0.0.1:5432");
        let postgres = service_available("PostgreSQL", &pg).then(|| {
            let (host, port) = pg.rsplit_once(':').unwrap();
            let dsn = format!("host={host} port={port} user=postgres dbname=test sslmode=disable");
            let v1 = component(
                "pg-v1",
                "state.postgresql",
                "v1",
                &[
                    ("connectionString", dsn.clone()),
                    ("tableName", format!("mecha_e2e_{suffix}")),
                    ("metadataTableName", format!("mecha_e2e_meta_{suffix}")),
                ],
            );
            let v2 = component(
                "pg-v2",
                "state.postgresql",
                "v2",
                &[
                    ("connectionString", dsn.clone()),
                    ("tablePrefix", format!("mecha_e2e_{suffix}_")),
                    ("metadataTableName", format!("mecha_e2e_meta_{suffix}")),
                ],
            );
            resources = std::mem::replace(&mut resources, Resources::new())
                .file("pg.yaml", &format!("{v1}---\n{v2}"));
            stores.extend(["pg-v1", "pg-v2"]);
            format!("postgres://postgres@{pg}/test?sslmode=disable")
        });
        let my = service_url("mysql", "127.0.0.1:3306");
        let mysql = service_available("MySQL", &my).then(|| {
            let dsn = format!("root:@tcp({my})/?allowNativePasswords=true");
            resources = std::mem::replace(&mut resources, Resources::new()).file(
                "mysql.yaml",
                &component(
                    "mysql",
                    "state.mysql",
                    "v1",
                    &[
                        ("connectionString", dsn.clone()),
                        ("schemaName", format!("mecha_e2e_{suffix}")),
                    ],
                ),
            );
            stores.push("mysql");
            dsn
        });
        (
            resources,
            Self {
                stores,
                postgres,
                mysql,
                suffix,
            },
        )
    }

    /// Drops the tables and the database the test made.
    async fn drop_tables(&self) {
        let suffix = &self.suffix;
        if let Some(url) = &self.postgres {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            for table in [
                format!("mecha_e2e_{suffix}"),
                format!("mecha_e2e_{suffix}_state"),
                format!("mecha_e2e_meta_{suffix}"),
            ] {
                sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
        if let Some(dsn) = &self.mysql {
            let options = mecha_component_mysql_options(dsn);
            let mut conn = sqlx::MySqlConnection::connect_with(&options).await.unwrap();
            sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS mecha_e2e_{suffix}"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}

fn mecha_component_mysql_options(dsn: &str) -> sqlx::mysql::MySqlConnectOptions {
    // `root:@tcp(host:port)/...`
    let address = dsn
        .split_once("tcp(")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(address, _)| address)
        .unwrap();
    let (host, port) = address.rsplit_once(':').unwrap();
    sqlx::mysql::MySqlConnectOptions::new()
        .host(host)
        .port(port.parse().unwrap())
        .username("root")
}

/// The state table of the scenarios, on every reachable database, over
/// both transports: the same answers and error codes as the embedded
/// stores give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_table_on_real_databases() {
    let (resources, databases) = Databases::reachable();
    if databases.stores.is_empty() {
        return;
    }
    let stores = databases.stores.clone();
    // An app id of this run's own, so Redis keys never meet an older run's.
    let sidecar = Sidecar::start_with(
        resources,
        Options {
            app_id: format!("e2e-{}", databases.suffix),
            ..Options::default()
        },
    );
    let http = Http {
        base: sidecar.http(""),
        client: reqwest::Client::new(),
    };
    let grpc = Grpc {
        client: sidecar.grpc().await,
    };
    let runs = stores.iter().map(|store| async {
        run_table(&http, store).await;
        run_table(&grpc, store).await;
    });
    futures::future::join_all(runs).await;
    // Leave nothing behind in Redis: the table keeps t1 and t2.
    if stores.contains(&"redis") {
        for prefix in ["http", "grpc"] {
            for key in ["t1", "t2"] {
                http.delete("redis", &format!("{prefix}-redis-{key}"), None)
                    .await
                    .unwrap();
            }
        }
    }
    let components: Value = reqwest::get(sidecar.http("/v1.0/metadata"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let capabilities = |name: &str| -> Vec<String> {
        components["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| serde_json::from_value(c["capabilities"].clone()).unwrap())
            .unwrap_or_default()
    };
    for store in &stores {
        let caps = capabilities(store);
        assert!(caps.contains(&"ETAG".to_owned()), "{store}: {caps:?}");
        let query = caps.contains(&"QUERY_API".to_owned());
        assert_eq!(
            query,
            matches!(*store, "pg-v1" | "mysql"),
            "{store}: {caps:?}"
        );
    }
    drop(sidecar);
    databases.drop_tables().await;
}

async fn http_query(sidecar: &Sidecar, store: &str, query: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(sidecar.http(&format!(
            "/v1.0-alpha1/state/{store}/query?metadata.contentType=application/json"
        )))
        .body(query.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"))
    };
    (status, body)
}

fn keys_of(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .map(|r| r["key"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The query API over HTTP and gRPC, on the embedded stores, with Dapr's
/// answer shapes and errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_query_over_both_transports() {
    let redis = service_url("redis", "127.0.0.1:6379");
    let mut resources = crate::scenarios::two_stores();
    let with_redis = service_available("Redis", &redis);
    if with_redis {
        resources = resources.file(
            "redis.yaml",
            &component("redis", "state.redis", "v1", &[("redisHost", redis)]),
        );
    }
    let sidecar = Sidecar::with_resources(resources);
    let http = Http {
        base: sidecar.http(""),
        client: reqwest::Client::new(),
    };
    let mut grpc = sidecar.grpc().await;
    let people = [
        (
            "alice",
            json!({"person": {"org": "Dev Ops", "id": 3}, "state": "WA"}),
        ),
        (
            "bob",
            json!({"person": {"org": "Finance", "id": 1}, "state": "CA"}),
        ),
        (
            "carol",
            json!({"person": {"org": "Dev Ops", "id": 2}, "state": "CA"}),
        ),
    ];
    for store in ["durable", "mem"] {
        let items = people
            .iter()
            .map(|(key, doc)| ((*key).to_owned(), doc.to_string(), None, false, None))
            .collect();
        http.save(store, items).await.unwrap();
        let query = r#"{"filter":{"EQ":{"person.org":"Dev Ops"}},"sort":[{"key":"person.id","order":"DESC"}]}"#;
        let (status, body) = http_query(&sidecar, store, query).await;
        assert_eq!(status, 200, "{store}: {body}");
        assert_eq!(keys_of(&body), ["alice", "carol"], "{store}");
        assert_eq!(
            body["results"][0]["data"], people[0].1,
            "data is the JSON value"
        );
        assert!(body["results"][0]["etag"].is_string(), "{body}");
        assert!(body.get("token").is_none(), "no more pages: {body}");

        let paged = r#"{"sort":[{"key":"person.id"}],"page":{"limit":2}}"#;
        let (_, first) = http_query(&sidecar, store, paged).await;
        assert_eq!(keys_of(&first), ["bob", "carol"]);
        let token = first["token"].as_str().expect("a token for the next page");
        let reply = grpc
            .query_state_alpha1(pb::QueryStateRequest {
                store_name: store.into(),
                query: format!(
                    r#"{{"sort":[{{"key":"person.id"}}],"page":{{"limit":2,"token":"{token}"}}}}"#
                ),
                metadata: Default::default(),
            })
            .await
            .unwrap()
            .into_inner();
        let keys: Vec<&str> = reply.results.iter().map(|r| r.key.as_str()).collect();
        assert_eq!((keys, reply.token.as_str()), (vec!["alice"], ""), "{store}");
        let data: Value = serde_json::from_slice(&reply.results[0].data).unwrap();
        assert_eq!(data, people[0].1);

        let (status, body) =
            http_query(&sidecar, store, r#"{"filter":{"EQ":{"state":"TX"}}}"#).await;
        assert_eq!((status, body), (204, Value::Null), "no results is 204");

        let (status, body) =
            http_query(&sidecar, store, r#"{"filter":{"LIKE":{"state":"C%"}}}"#).await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["errorCode"], "ERR_STATE_QUERY");
        let err = grpc
            .query_state_alpha1(pb::QueryStateRequest {
                store_name: store.into(),
                query: "not json".into(),
                metadata: Default::default(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
        assert_eq!(
            err.get_details_error_info().map(|i| i.reason),
            Some("DAPR_STATE_QUERY_FAILED".into())
        );
    }
    let (status, body) = http_query(&sidecar, "nope", "{}").await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (400, Some("ERR_STATE_STORE_NOT_FOUND"))
    );
    let put = reqwest::Client::new()
        .put(sidecar.http("/v1.0-alpha1/state/mem/query"))
        .body(r#"{"filter":{"EQ":{"state":"WA"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200, "PUT works as POST does");
    if with_redis {
        let (status, body) = http_query(&sidecar, "redis", "{}").await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["errorCode"], "ERR_STATE_STORE_NOT_SUPPORTED");
        assert_eq!(
            body["details"][0]["reason"],
            "DAPR_STATE_QUERYING_NOT_SUPPORTED"
        );
        let err = grpc
            .query_state_alpha1(pb::QueryStateRequest {
                store_name: "redis".into(),
                query: "{}".into(),
                metadata: Default::default(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
    }
}

/// Client mistakes, the same on every store: a 4xx with daprd's code, or
/// daprd's own 5xx where daprd answers one (a failed query), never a
/// backend's 500; values a backend cannot hold as JSON are kept in a form
/// that round-trips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_mistakes_are_never_a_backends_500() {
    let (resources, databases) = Databases::reachable();
    let db = tempfile::TempDir::new().unwrap();
    let resources = resources.file(
        "sqlite.yaml",
        &component(
            "sqlite",
            "state.sqlite",
            "v1",
            &[(
                "connectionString",
                db.path().join("state.db").to_string_lossy().into_owned(),
            )],
        ),
    );
    let sidecar = Sidecar::start_with(
        resources,
        Options {
            app_id: format!("mistakes-{}", databases.suffix),
            ..Options::default()
        },
    );
    let client = reqwest::Client::new();
    let send = |path: String, body: String| {
        let request = client.post(sidecar.http(&path)).body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let code = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["errorCode"].as_str().map(str::to_owned))
                .unwrap_or_default();
            (status, code, text)
        }
    };
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    // Letters from a simple generator: no run for a compressor to take.
    let incompressible = |len: usize| {
        let mut seed = 0x2545_f491_u32;
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                char::from(b'a' + (seed % 26) as u8)
            })
            .collect::<String>()
    };
    let many =
        |n: usize, item: &dyn Fn(usize) -> String| (0..n).map(item).collect::<Vec<_>>().join(",");
    let mut stores = databases.stores.clone();
    stores.push("sqlite");
    for store in &stores {
        let save = format!("/v1.0/state/{store}");
        let cases: Vec<(&str, String, String, u16, &str)> = vec![
            (
                "a key with NUL",
                save.clone(),
                r#"[{"key":"a\u0000b","value":1}]"#.into(),
                400,
                "ERR_MALFORMED_REQUEST",
            ),
            (
                "a key of 1 MB",
                save.clone(),
                format!(r#"[{{"key":"{}","value":1}}]"#, "k".repeat(1 << 20)),
                400,
                "ERR_MALFORMED_REQUEST",
            ),
            (
                "a key of 3000 bytes that does not compress",
                save.clone(),
                format!(r#"[{{"key":"{}","value":1}}]"#, incompressible(3000)),
                // PostgreSQL's index and MySQL's column hold less; the
                // others take it.
                if store.starts_with("pg") || *store == "mysql" {
                    400
                } else {
                    204
                },
                if store.starts_with("pg") || *store == "mysql" {
                    "ERR_MALFORMED_REQUEST"
                } else {
                    ""
                },
            ),
            (
                "more items than a bulk request takes",
                save.clone(),
                format!(
                    "[{}]",
                    many(10_001, &|i| format!(r#"{{"key":"m{i}","value":1}}"#))
                ),
                400,
                "ERR_MALFORMED_REQUEST",
            ),
            (
                "more keys than a bulk get takes",
                format!("/v1.0/state/{store}/bulk"),
                format!(
                    r#"{{"keys":[{}]}}"#,
                    many(10_001, &|i| format!(r#""m{i}""#))
                ),
                400,
                "ERR_MALFORMED_REQUEST",
            ),
            (
                "more operations than a transaction takes",
                format!("/v1.0/state/{store}/transaction"),
                format!(
                    r#"{{"operations":[{}]}}"#,
                    many(10_001, &|i| format!(
                        r#"{{"operation":"upsert","request":{{"key":"m{i}","value":1}}}}"#
                    ))
                ),
                400,
                "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS",
            ),
            (
                "a lone surrogate",
                save.clone(),
                r#"[{"key":"surrogate","value":"\ud800"}]"#.into(),
                204,
                "",
            ),
            (
                "a value 100,000 arrays deep",
                save.clone(),
                format!(r#"[{{"key":"deep","value":{deep}}}]"#),
                204,
                "",
            ),
        ];
        for (what, path, body, status, code) in cases {
            let (got, got_code, text) = send(path, body).await;
            let text = &text[..text.len().min(300)];
            assert_eq!(
                (got, got_code.as_str()),
                (status, code),
                "{store}, {what}: {text}"
            );
        }
        // What was stored comes back as it was sent.
        for (key, value) in [
            ("surrogate", r#""\ud800""#.to_owned()),
            ("deep", deep.clone()),
        ] {
            let response = client
                .get(sidecar.http(&format!("/v1.0/state/{store}/{key}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "{store}/{key}");
            let got = response.text().await.unwrap();
            assert!(
                got == value,
                "{store}/{key}: {}",
                &got[..got.len().min(100)]
            );
        }
        // A query beyond SQLite's own limits is daprd's failed query, naming
        // the limit, on every store that queries (not Redis without
        // RediSearch, nor PostgreSQL v2, as in daprd).
        if !["redis", "pg-v2"].contains(store) {
            let sort = many(5000, &|i| format!(r#"{{"key":"k{i}"}}"#));
            let (got, got_code, text) = send(
                format!("/v1.0-alpha1/state/{store}/query"),
                format!(r#"{{"sort":[{sort}]}}"#),
            )
            .await;
            assert_eq!(
                (got, got_code.as_str()),
                (500, "ERR_STATE_QUERY"),
                "{store}: {text}"
            );
            assert!(text.contains("limit of 32"), "{store}: {text}");
        }
    }
    databases.drop_tables().await;
}
