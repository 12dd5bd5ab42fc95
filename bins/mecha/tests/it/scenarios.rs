//! One table of state scenarios, run over HTTP and over gRPC against the
//! real binary, on a SQLite and an in-memory store. Each step names what it
//! expects on each transport; successes must be identical on both.

use std::collections::BTreeMap;
use std::time::Duration;

use mecha_proto::common::{Etag, StateItem, StateOptions};
use mecha_proto::runtime as pb;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

use crate::harness::{Resources, Sidecar};

/// A failure, as each transport reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub http: Option<(u16, String)>,
    pub grpc: Option<(Code, String)>,
}

/// An item to save. `etag` names a remembered etag slot or a literal.
#[derive(Clone)]
struct Item {
    key: &'static str,
    value: &'static str,
    etag: Tag,
    first_write: bool,
    ttl: Option<&'static str>,
}

#[derive(Clone, Copy)]
enum Tag {
    None,
    Slot(usize),
    Literal(&'static str),
}

fn item(key: &'static str, value: &'static str) -> Item {
    Item {
        key,
        value,
        etag: Tag::None,
        first_write: false,
        ttl: None,
    }
}

enum Step {
    Save(&'static str, Vec<Item>),
    Get(&'static str),
    /// Get and remember the etag in a slot.
    Remember(&'static str, usize),
    Delete(&'static str, Tag),
    BulkGet(Vec<&'static str>),
    Txn(Vec<(&'static str, Item)>),
    Sleep(u64),
}

enum Expect {
    Ok,
    Value(Option<&'static str>),
    /// The item exists and reports a TTL expiry time.
    HasTtl,
    Items(Vec<(&'static str, Option<&'static str>)>),
    Err {
        http: (u16, &'static str),
        grpc: (Code, &'static str),
    },
}

fn steps() -> Vec<(Step, Expect)> {
    use Expect::*;
    use Step::*;
    let err = |status, code, grpc, reason| Err {
        http: (status, code),
        grpc: (grpc, reason),
    };
    vec![
        (Save("S", vec![item("k1", r#"{"n":1}"#)]), Ok),
        (Remember("k1", 0), Value(Some(r#"{"n":1}"#))),
        (Get("missing"), Value(None)),
        (
            Save(
                "S",
                vec![Item {
                    etag: Tag::Slot(0),
                    ..item("k1", r#"{"n":2}"#)
                }],
            ),
            Ok,
        ),
        (
            Save(
                "S",
                vec![Item {
                    etag: Tag::Slot(0),
                    ..item("k1", r#"{"n":3}"#)
                }],
            ),
            err(409, "ERR_STATE_SAVE", Code::Aborted, "ERR_STATE_SAVE"),
        ),
        (Get("k1"), Value(Some(r#"{"n":2}"#))),
        (
            Save(
                "S",
                vec![Item {
                    etag: Tag::Literal("not-an-etag"),
                    ..item("k1", "1")
                }],
            ),
            err(
                400,
                "ERR_STATE_SAVE",
                Code::InvalidArgument,
                "ERR_STATE_SAVE",
            ),
        ),
        (
            Save(
                "S",
                vec![Item {
                    first_write: true,
                    ..item("fw", r#""first""#)
                }],
            ),
            Ok,
        ),
        (
            Save(
                "S",
                vec![Item {
                    first_write: true,
                    ..item("fw", r#""second""#)
                }],
            ),
            err(409, "ERR_STATE_SAVE", Code::Aborted, "ERR_STATE_SAVE"),
        ),
        (Get("fw"), Value(Some(r#""first""#))),
        (
            Delete("k1", Tag::Slot(0)),
            err(409, "ERR_STATE_DELETE", Code::Aborted, "ERR_STATE_DELETE"),
        ),
        (Remember("k1", 1), Value(Some(r#"{"n":2}"#))),
        (Delete("k1", Tag::Slot(1)), Ok),
        (Get("k1"), Value(None)),
        (Delete("never-there", Tag::None), Ok),
        (
            BulkGet(vec!["fw", "k1", "nope"]),
            Items(vec![
                ("fw", Some(r#""first""#)),
                ("k1", None),
                ("nope", None),
            ]),
        ),
        (
            Txn(vec![
                ("upsert", item("t1", "1")),
                ("upsert", item("t2", "2")),
                ("delete", item("fw", "")),
            ]),
            Ok,
        ),
        (
            BulkGet(vec!["t1", "t2", "fw"]),
            Items(vec![("t1", Some("1")), ("t2", Some("2")), ("fw", None)]),
        ),
        (
            Txn(vec![
                ("upsert", item("t3", "3")),
                (
                    "delete",
                    Item {
                        etag: Tag::Slot(0),
                        ..item("t1", "")
                    },
                ),
            ]),
            // daprd: any failure of a transaction, ETag conflicts included,
            // is 500 INTERNAL (the transaction stays all or nothing).
            err(
                500,
                "ERR_STATE_TRANSACTION",
                Code::Internal,
                "ERR_STATE_TRANSACTION",
            ),
        ),
        (Get("t3"), Value(None)),
        (Get("t1"), Value(Some("1"))),
        (
            Txn(vec![("merge", item("t4", "4"))]),
            err(
                400,
                "ERR_NOT_SUPPORTED_STATE_OPERATION",
                Code::Unimplemented,
                "ERR_NOT_SUPPORTED_STATE_OPERATION",
            ),
        ),
        (
            Save("S", vec![item("a||b", "1")]),
            err(
                400,
                "ERR_MALFORMED_REQUEST",
                Code::InvalidArgument,
                "DAPR_STATE_ILLEGAL_KEY",
            ),
        ),
        (
            Save("no-such-store", vec![item("k", "1")]),
            err(
                400,
                "ERR_STATE_STORE_NOT_FOUND",
                Code::InvalidArgument,
                "DAPR_STATE_NOT_FOUND",
            ),
        ),
        (Save("S", vec![]), Ok),
        (
            Save(
                "S",
                vec![Item {
                    ttl: Some("soon"),
                    ..item("ttl", "1")
                }],
            ),
            // daprd's stores parse ttlInSeconds: a bad one fails the save.
            err(500, "ERR_STATE_SAVE", Code::Internal, "ERR_STATE_SAVE"),
        ),
        (
            Save(
                "S",
                vec![Item {
                    ttl: Some("1"),
                    ..item("ttl", "1")
                }],
            ),
            Ok,
        ),
        (Get("ttl"), HasTtl),
        (Sleep(2100), Ok),
        (Get("ttl"), Value(None)),
    ]
}

/// key, JSON value, etag, first-write, ttlInSeconds.
pub type SaveItem = (String, String, Option<String>, bool, Option<String>);
/// A found item: value, etag and response metadata.
pub type Found = Option<(String, String, BTreeMap<String, String>)>;
/// operation, key, JSON value, etag.
pub type TxnOp = (String, String, String, Option<String>);

/// One transport's view of the state API.
pub trait Transport {
    const NAME: &'static str;
    async fn save(&self, store: &str, items: Vec<SaveItem>) -> Result<(), Failure>;
    async fn get(&self, store: &str, key: &str) -> Result<Found, Failure>;
    async fn delete(&self, store: &str, key: &str, etag: Option<String>) -> Result<(), Failure>;
    async fn bulk_get(
        &self,
        store: &str,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<String>)>, Failure>;
    async fn transaction(&self, store: &str, ops: Vec<TxnOp>) -> Result<(), Failure>;
}

/// Runs the table on one store. Values are compared as JSON, so a store
/// that re-formats JSON (PostgreSQL's jsonb) passes too.
pub async fn run_table<T: Transport>(t: &T, store: &str) {
    let prefix = format!("{}-{store}-", T::NAME);
    let key = |k: &str| format!("{prefix}{k}");
    let mut slots: Vec<Option<String>> = vec![None; 4];
    let etag = |tag: Tag, slots: &Vec<Option<String>>| match tag {
        Tag::None => None,
        Tag::Slot(i) => slots[i].clone(),
        Tag::Literal(text) => Some(text.to_owned()),
    };
    for (index, (step, expect)) in steps().into_iter().enumerate() {
        let at = format!("{} step {index} on {store}", T::NAME);
        let outcome: Result<Observed, Failure> = match step {
            Step::Save(target, items) => {
                let target = if target == "S" { store } else { target };
                let items = items
                    .into_iter()
                    .map(|i| {
                        (
                            key(i.key),
                            i.value.to_owned(),
                            etag(i.etag, &slots),
                            i.first_write,
                            i.ttl.map(str::to_owned),
                        )
                    })
                    .collect();
                t.save(target, items).await.map(|()| Observed::Ok)
            }
            Step::Get(k) => t.get(store, &key(k)).await.map(Observed::Got),
            Step::Remember(k, slot) => {
                let got = t.get(store, &key(k)).await;
                if let Ok(Some((_, etag, _))) = &got {
                    slots[slot] = Some(etag.clone());
                }
                got.map(Observed::Got)
            }
            Step::Delete(k, tag) => t
                .delete(store, &key(k), etag(tag, &slots))
                .await
                .map(|()| Observed::Ok),
            Step::BulkGet(keys) => t
                .bulk_get(store, keys.iter().map(|k| key(k)).collect())
                .await
                .map(|items| {
                    Observed::Items(
                        items
                            .into_iter()
                            .map(|(k, v)| (k[prefix.len()..].to_owned(), v))
                            .collect(),
                    )
                }),
            Step::Txn(ops) => {
                let ops = ops
                    .into_iter()
                    .map(|(op, i)| {
                        (
                            op.to_owned(),
                            key(i.key),
                            i.value.to_owned(),
                            etag(i.etag, &slots),
                        )
                    })
                    .collect();
                t.transaction(store, ops).await.map(|()| Observed::Ok)
            }
            Step::Sleep(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Observed::Ok)
            }
        };
        match (expect, outcome) {
            (Expect::Ok, Ok(Observed::Ok)) => {}
            (Expect::Value(want), Ok(Observed::Got(got))) => {
                assert_eq!(got.map(|g| json_form(&g.0)), want.map(json_form), "{at}");
            }
            (Expect::HasTtl, Ok(Observed::Got(Some((_, etag, metadata))))) => {
                assert!(!etag.is_empty(), "{at}: etag");
                let expiry = metadata
                    .get("ttlExpireTime")
                    .unwrap_or_else(|| panic!("{at}: no ttlExpireTime in {metadata:?}"));
                assert!(
                    expiry.ends_with('Z') && expiry.contains('T'),
                    "{at}: {expiry}"
                );
            }
            (Expect::Items(want), Ok(Observed::Items(got))) => {
                let want: Vec<(String, Option<String>)> = want
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.map(json_form)))
                    .collect();
                let got: Vec<(String, Option<String>)> = got
                    .into_iter()
                    .map(|(k, v)| (k, v.as_deref().map(json_form)))
                    .collect();
                assert_eq!(got, want, "{at}");
            }
            (Expect::Err { http, grpc }, Err(failure)) => {
                if let Some((status, code)) = failure.http {
                    assert_eq!((status, code.as_str()), http, "{at}");
                }
                if let Some((code, reason)) = failure.grpc {
                    assert_eq!((code, reason.as_str()), grpc, "{at}");
                }
            }
            (_, outcome) => panic!("{at}: unexpected outcome {outcome:?}"),
        }
    }
}

/// A JSON text in one canonical form (other text as it is).
fn json_form(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|value| value.to_string())
        .unwrap_or_else(|_| text.to_owned())
}

#[derive(Debug)]
enum Observed {
    Ok,
    Got(Found),
    Items(Vec<(String, Option<String>)>),
}

pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
}

async fn http_failure(response: reqwest::Response) -> Failure {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let code = body["errorCode"].as_str().unwrap_or_default().to_owned();
    Failure {
        http: Some((status, code)),
        grpc: None,
    }
}

impl Transport for Http {
    const NAME: &'static str = "http";

    async fn save(&self, store: &str, items: Vec<SaveItem>) -> Result<(), Failure> {
        let body: Vec<serde_json::Value> = items
            .into_iter()
            .map(|(key, value, etag, first_write, ttl)| {
                let mut item = json!({ "key": key, "value": serde_json::from_str::<serde_json::Value>(&value).unwrap() });
                if let Some(etag) = etag {
                    item["etag"] = json!(etag);
                }
                if first_write {
                    item["options"] = json!({ "concurrency": "first-write", "consistency": "strong" });
                }
                if let Some(ttl) = ttl {
                    item["metadata"] = json!({ "ttlInSeconds": ttl });
                }
                item
            })
            .collect();
        let response = self
            .client
            .post(format!("{}/v1.0/state/{store}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 204 {
            Ok(())
        } else {
            Err(http_failure(response).await)
        }
    }

    async fn get(&self, store: &str, key: &str) -> Result<Found, Failure> {
        let response = self
            .client
            .get(format!("{}/v1.0/state/{store}/{key}", self.base))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            204 => Ok(None),
            200 => {
                let etag = response.headers()["etag"].to_str().unwrap().to_owned();
                let metadata = response
                    .headers()
                    .iter()
                    .filter_map(|(name, value)| {
                        Some((
                            name.as_str().strip_prefix("metadata.")?.to_owned(),
                            value.to_str().ok()?.to_owned(),
                        ))
                    })
                    .map(|(k, v)| {
                        (
                            if k == "ttlexpiretime" {
                                "ttlExpireTime".to_owned()
                            } else {
                                k
                            },
                            v,
                        )
                    })
                    .collect();
                Ok(Some((response.text().await.unwrap(), etag, metadata)))
            }
            _ => Err(http_failure(response).await),
        }
    }

    async fn delete(&self, store: &str, key: &str, etag: Option<String>) -> Result<(), Failure> {
        let mut request = self
            .client
            .delete(format!("{}/v1.0/state/{store}/{key}", self.base));
        if let Some(etag) = etag {
            request = request.header("If-Match", etag);
        }
        let response = request.send().await.unwrap();
        if response.status().as_u16() == 204 {
            Ok(())
        } else {
            Err(http_failure(response).await)
        }
    }

    async fn bulk_get(
        &self,
        store: &str,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<String>)>, Failure> {
        let response = self
            .client
            .post(format!("{}/v1.0/state/{store}/bulk", self.base))
            .json(&json!({ "keys": keys, "parallelism": 2 }))
            .send()
            .await
            .unwrap();
        if response.status().as_u16() != 200 {
            return Err(http_failure(response).await);
        }
        let items: Vec<serde_json::Value> = response.json().await.unwrap();
        Ok(items
            .into_iter()
            .map(|i| {
                (
                    i["key"].as_str().unwrap().to_owned(),
                    i.get("data").map(|d| d.to_string()),
                )
            })
            .collect())
    }

    async fn transaction(&self, store: &str, ops: Vec<TxnOp>) -> Result<(), Failure> {
        let operations: Vec<serde_json::Value> = ops
            .into_iter()
            .map(|(op, key, value, etag)| {
                let mut request = json!({ "key": key });
                if !value.is_empty() {
                    request["value"] = serde_json::from_str(&value).unwrap();
                }
                if let Some(etag) = etag {
                    request["etag"] = json!(etag);
                }
                json!({ "operation": op, "request": request })
            })
            .collect();
        let response = self
            .client
            .post(format!("{}/v1.0/state/{store}/transaction", self.base))
            .json(&json!({ "operations": operations }))
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 204 {
            Ok(())
        } else {
            Err(http_failure(response).await)
        }
    }
}

pub struct Grpc {
    pub client: mecha_proto::runtime::dapr_client::DaprClient<tonic::transport::Channel>,
}

fn grpc_failure(status: tonic::Status) -> Failure {
    let info = status
        .get_details_error_info()
        .expect("every error carries ErrorInfo");
    assert_eq!(info.domain, "dapr.io");
    Failure {
        http: None,
        grpc: Some((status.code(), info.reason)),
    }
}

fn state_item(
    key: String,
    value: String,
    etag: Option<String>,
    first_write: bool,
    ttl: Option<String>,
) -> StateItem {
    StateItem {
        key,
        value: value.into(),
        etag: etag.map(|value| Etag { value }),
        metadata: ttl
            .map(|t| [("ttlInSeconds".to_owned(), t)].into())
            .unwrap_or_default(),
        options: first_write.then_some(StateOptions {
            concurrency: 1,
            consistency: 2,
        }),
    }
}

impl Transport for Grpc {
    const NAME: &'static str = "grpc";

    async fn save(&self, store: &str, items: Vec<SaveItem>) -> Result<(), Failure> {
        let states = items
            .into_iter()
            .map(|(k, v, e, f, t)| state_item(k, v, e, f, t))
            .collect();
        let request = pb::SaveStateRequest {
            store_name: store.into(),
            states,
        };
        self.client
            .clone()
            .save_state(request)
            .await
            .map(|_| ())
            .map_err(grpc_failure)
    }

    async fn get(&self, store: &str, key: &str) -> Result<Found, Failure> {
        let request = pb::GetStateRequest {
            store_name: store.into(),
            key: key.into(),
            ..Default::default()
        };
        let response = self
            .client
            .clone()
            .get_state(request)
            .await
            .map_err(grpc_failure)?
            .into_inner();
        if response.etag.is_empty() && response.data.is_empty() {
            return Ok(None);
        }
        let data = String::from_utf8(response.data.to_vec()).unwrap();
        Ok(Some((
            data,
            response.etag,
            response.metadata.into_iter().collect(),
        )))
    }

    async fn delete(&self, store: &str, key: &str, etag: Option<String>) -> Result<(), Failure> {
        let request = pb::DeleteStateRequest {
            store_name: store.into(),
            key: key.into(),
            etag: etag.map(|value| Etag { value }),
            ..Default::default()
        };
        self.client
            .clone()
            .delete_state(request)
            .await
            .map(|_| ())
            .map_err(grpc_failure)
    }

    async fn bulk_get(
        &self,
        store: &str,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<String>)>, Failure> {
        let request = pb::GetBulkStateRequest {
            store_name: store.into(),
            keys,
            parallelism: 2,
            ..Default::default()
        };
        let response = self
            .client
            .clone()
            .get_bulk_state(request)
            .await
            .map_err(grpc_failure)?
            .into_inner();
        Ok(response
            .items
            .into_iter()
            .map(|i| {
                (
                    i.key,
                    (!i.etag.is_empty()).then(|| String::from_utf8(i.data.to_vec()).unwrap()),
                )
            })
            .collect())
    }

    async fn transaction(&self, store: &str, ops: Vec<TxnOp>) -> Result<(), Failure> {
        let operations = ops
            .into_iter()
            .map(|(op, key, value, etag)| pb::TransactionalStateOperation {
                operation_type: op,
                request: Some(state_item(key, value, etag, false, None)),
            })
            .collect();
        let request = pb::ExecuteStateTransactionRequest {
            store_name: store.into(),
            operations,
            ..Default::default()
        };
        self.client
            .clone()
            .execute_state_transaction(request)
            .await
            .map(|_| ())
            .map_err(grpc_failure)
    }
}

/// A SQLite store (its file in the test's own folder) and an in-memory one.
pub fn two_stores() -> Resources {
    let res = Resources::new();
    let db = res.path().join("state.db").to_string_lossy().into_owned();
    res.component("durable", "state.sqlite", &[("connectionString", &db)])
        .component("mem", "state.in-memory", &[])
}

async fn start() -> Sidecar {
    Sidecar::with_resources(two_stores())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_table_over_http() {
    let sidecar = start().await;
    let http = Http {
        base: sidecar.http(""),
        client: reqwest::Client::new(),
    };
    run_table(&http, "durable").await;
    run_table(&http, "mem").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_table_over_grpc() {
    let sidecar = start().await;
    let grpc = Grpc {
        client: sidecar.grpc().await,
    };
    run_table(&grpc, "durable").await;
    run_table(&grpc, "mem").await;
}

/// Both transports see the same data: what one writes the other reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transports_share_one_store() {
    let sidecar = start().await;
    let http = Http {
        base: sidecar.http(""),
        client: reqwest::Client::new(),
    };
    let grpc = Grpc {
        client: sidecar.grpc().await,
    };
    http.save(
        "durable",
        vec![(
            "shared".into(),
            r#"{"from":"http"}"#.into(),
            None,
            false,
            None,
        )],
    )
    .await
    .unwrap();
    let (value, etag, _) = grpc.get("durable", "shared").await.unwrap().unwrap();
    assert_eq!(value, r#"{"from":"http"}"#);
    grpc.save(
        "durable",
        vec![(
            "shared".into(),
            r#"{"from":"grpc"}"#.into(),
            Some(etag.clone()),
            false,
            None,
        )],
    )
    .await
    .unwrap();
    let (value, new_etag, _) = http.get("durable", "shared").await.unwrap().unwrap();
    assert_eq!(value, r#"{"from":"grpc"}"#);
    assert_ne!(etag, new_etag);
}
