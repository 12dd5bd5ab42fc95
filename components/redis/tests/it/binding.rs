//! `bindings.redis` against the output binding conformance suite, plus its
//! expiry, get-and-delete and increment.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mecha_bindings::conformance::OutputHarness;
use mecha_bindings::*;
use mecha_component_redis::{RedisBinding, Settings};
use mecha_core::testing::{service_available, unique};
use mecha_core::{MetadataReader, Properties};

use crate::pubsub::address;

async fn binding() -> Option<Arc<RedisBinding>> {
    if !service_available("Redis", &address()) {
        return None;
    }
    let props = Properties::new().with("redisHost", &address());
    let reader = MetadataReader::new(&props);
    let settings = Settings::from_metadata(&reader);
    assert!(reader.errors().is_empty(), "{:?}", reader.errors());
    Some(Arc::new(RedisBinding::connect(settings).await.unwrap()))
}

#[derive(Default)]
struct RedisOutput;

#[async_trait]
impl OutputHarness for RedisOutput {
    async fn component(&self) -> Option<Arc<dyn OutputBinding>> {
        Some(binding().await?)
    }

    fn operations(&self) -> &'static [&'static str] {
        &["create", "get", "delete", "increment"]
    }

    fn write_then_read(&self, data: &[u8]) -> Option<(InvokeRequest, InvokeRequest)> {
        let key = unique("binding");
        Some((
            InvokeRequest::new("create", data.to_vec()).with("key", &key),
            InvokeRequest::new("get", "").with("key", &key),
        ))
    }
}

mecha_bindings::output_binding_conformance!(RedisOutput);

async fn get(binding: &RedisBinding, key: &str) -> Vec<u8> {
    let answer = binding
        .invoke(&InvokeRequest::new("get", "").with("key", key))
        .await
        .unwrap()
        .unwrap();
    answer.data.to_vec()
}

#[tokio::test]
async fn expiry_getdel_increment_and_missing_key() {
    let Some(binding) = binding().await else {
        return;
    };
    let key = unique("ttl");
    binding
        .invoke(
            &InvokeRequest::new("create", "soon gone")
                .with("key", &key)
                .with("ttlInSeconds", "1"),
        )
        .await
        .unwrap();
    assert_eq!(get(&binding, &key).await, b"soon gone");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get(&binding, &key).await, b"", "expired");

    let key = unique("getdel");
    binding
        .invoke(&InvokeRequest::new("create", "once").with("key", &key))
        .await
        .unwrap();
    let taken = binding
        .invoke(
            &InvokeRequest::new("get", "")
                .with("key", &key)
                .with("delete", "true"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.data, "once");
    assert_eq!(get(&binding, &key).await, b"", "deleted by the get");

    let key = unique("counter");
    for _ in 0..3 {
        binding
            .invoke(&InvokeRequest::new("increment", "").with("key", &key))
            .await
            .unwrap();
    }
    assert_eq!(get(&binding, &key).await, b"3");
    binding
        .invoke(&InvokeRequest::new("delete", "").with("key", &key))
        .await
        .unwrap();
    assert_eq!(get(&binding, &key).await, b"");

    let err = binding
        .invoke(&InvokeRequest::new("get", ""))
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::Invalid(_)), "{err}");
    let err = binding
        .invoke(
            &InvokeRequest::new("create", "x")
                .with("key", &unique("bad"))
                .with("ttlInSeconds", "soon"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::Invalid(_)), "{err}");
}
