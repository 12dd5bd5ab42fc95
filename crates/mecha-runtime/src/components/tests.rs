//! Planning and building, with a test-only component type (`state.fake`)
//! whose build can be made to fail or hang.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use mecha_config::{MetadataItem, MetadataSource};
use mecha_core::Factory;
use mecha_state::*;

use super::*;

struct FakeStore;

#[async_trait]
impl StateStore for FakeStore {
    fn features(&self) -> &[Feature] {
        &[Feature::Etag, Feature::Transactional]
    }
    async fn get(&self, _: &GetRequest) -> Result<Option<GetResponse>, StateError> {
        Ok(None)
    }
    async fn set(&self, _: &SetRequest) -> Result<(), StateError> {
        Ok(())
    }
    async fn delete(&self, _: &DeleteRequest) -> Result<(), StateError> {
        Ok(())
    }
}

/// Reads `mode` (ok, fail, hang) and requires `needed`.
struct FakeFactory;

struct FakeBuilder(String);

impl Factory<dyn StateStore> for FakeFactory {
    fn type_name(&self) -> &'static str {
        "state.fake"
    }
    fn versions(&self) -> &'static [&'static str] {
        &["v1", "v2"]
    }
    fn configure(
        &self,
        _: &str,
        meta: &MetadataReader<'_>,
        _: &ComponentContext,
    ) -> Box<dyn Builder<dyn StateStore>> {
        let _ = meta.required("needed");
        Box::new(FakeBuilder(meta.string_or("mode", "ok")))
    }
}

#[async_trait]
impl Builder<dyn StateStore> for FakeBuilder {
    async fn build(self: Box<Self>) -> anyhow::Result<Arc<dyn StateStore>> {
        match self.0.as_str() {
            "fail" => anyhow::bail!("backend refused"),
            "hang" => std::future::pending().await,
            _ => Ok(Arc::new(FakeStore)),
        }
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register_state(FakeFactory);
    registry
}

fn component(name: &str, type_name: &str, metadata: &[(&str, MetadataSource)]) -> Component {
    Component {
        name: name.into(),
        namespace: None,
        type_name: type_name.into(),
        version: "v1".into(),
        init_timeout: Duration::from_millis(300),
        ignore_errors: false,
        metadata: metadata
            .iter()
            .map(|(n, s)| MetadataItem {
                name: (*n).into(),
                source: s.clone(),
            })
            .collect(),
        secret_store: None,
        scopes: vec![],
        file: PathBuf::from("c.yaml"),
    }
}

fn value(text: &str) -> MetadataSource {
    MetadataSource::Value(text.into())
}

fn info() -> RuntimeInfo {
    RuntimeInfo {
        app_id: "app".into(),
        ..RuntimeInfo::default()
    }
}

#[test]
fn every_problem_is_reported_with_its_component() {
    let mut wrong_version = component("v", "state.fake", &[("needed", value("x"))]);
    wrong_version.version = "v9".into();
    let components = vec![
        component("unknown", "state.nope", &[]),
        wrong_version,
        component("missing", "state.fake", &[("extra", value("1"))]),
        component(
            "secret",
            "state.fake",
            &[(
                "needed",
                MetadataSource::SecretKeyRef {
                    name: "s".into(),
                    key: "k".into(),
                },
            )],
        ),
        component(
            "env",
            "state.fake",
            &[(
                "needed",
                MetadataSource::EnvRef("MECHA_TEST_SURELY_UNSET".into()),
            )],
        ),
        component(
            "prefix",
            "state.fake",
            &[("needed", value("x")), ("keyPrefix", value("a||b"))],
        ),
        component("pubsub", "pubsub.redis", &[]),
    ];
    let (plan, report) = plan(&components, &registry(), &info());
    assert!(plan.is_empty());
    let messages: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    let expect = [
        ("component 'unknown'", "known types: state.fake"),
        ("component 'v'", "unsupported version 'v9'"),
        ("component 'missing'", "'needed' is missing"),
        ("component 'secret'", "secret stores are not supported"),
        ("component 'env'", "MECHA_TEST_SURELY_UNSET"),
        ("component 'prefix'", "keyPrefix"),
        (
            "component 'pubsub'",
            "unknown component type 'pubsub.redis'",
        ),
    ];
    assert_eq!(messages.len(), expect.len(), "{messages:#?}");
    for (label, text) in expect {
        assert!(
            messages
                .iter()
                .any(|m| m.contains(label) && m.contains(text)),
            "no error for {label} with {text}: {messages:#?}"
        );
    }
    assert_eq!(
        report.warnings.len(),
        1,
        "the unknown key 'extra' is a warning"
    );
    assert!(report.warnings[0].message.contains("'extra'"));
}

#[test]
fn only_one_actor_state_store() {
    let flag = [("needed", value("x")), ("actorStateStore", value("true"))];
    let components = vec![
        component("a", "state.fake", &flag),
        component("b", "state.fake", &flag),
    ];
    let (_, report) = plan(&components, &registry(), &info());
    assert_eq!(report.errors.len(), 1);
    assert!(report.errors[0].to_string().contains("component 'b'"));
}

#[tokio::test]
async fn build_reports_failures_and_honours_ignore_errors() {
    let mut ignored = component(
        "ignored",
        "state.fake",
        &[("needed", value("x")), ("mode", value("fail"))],
    );
    ignored.ignore_errors = true;
    let components = vec![
        component(
            "good",
            "state.fake",
            &[("needed", value("x")), ("actorStateStore", value("yes"))],
        ),
        ignored,
        component(
            "bad",
            "state.fake",
            &[("needed", value("x")), ("mode", value("fail"))],
        ),
        component(
            "slow",
            "state.fake",
            &[("needed", value("x")), ("mode", value("hang"))],
        ),
    ];
    let (plan, report) = plan(&components, &registry(), &info());
    assert!(report.is_ok(), "{report:?}");
    let errors = plan.build().await.err().expect("two components fail");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("'bad'") && e.contains("backend refused"))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("'slow'") && e.contains("timed out"))
    );

    let components = vec![component(
        "good",
        "state.fake",
        &[("needed", value("x")), ("actorStateStore", value("yes"))],
    )];
    let store = super::plan(&components, &registry(), &info())
        .0
        .build()
        .await
        .unwrap();
    let entry = store.state("good").unwrap();
    assert!(entry.actor_state_store);
    assert_eq!(
        store.infos()[0].capabilities,
        vec!["ETAG", "TRANSACTIONAL", "ACTOR"]
    );
}
