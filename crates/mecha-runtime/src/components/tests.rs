//! Planning and building, with a test-only component type (`state.fake`)
//! whose build can be made to fail or hang.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use mecha_core::{Builder, ComponentContext, Factory};
use mecha_resources::{MetadataItem, MetadataSource};
use mecha_secrets::SecretStore;
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
        // A `needed` of "boom" fails the build, to show which value reached
        // the component.
        let needed = meta.required("needed");
        let mode = if needed == "boom" {
            "fail".to_owned()
        } else {
            meta.string_or("mode", "ok")
        };
        Box::new(FakeBuilder(mode))
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

/// `secretstores.fake`: the secret `s` holds `k` = the metadata `value`.
struct FakeSecretsFactory;

struct FakeSecrets(String);

#[async_trait]
impl mecha_secrets::SecretStore for FakeSecrets {
    async fn get(
        &self,
        name: &str,
        _: &mecha_secrets::Metadata,
    ) -> Result<mecha_secrets::Secret, mecha_secrets::SecretError> {
        match name {
            "s" => Ok([("k".to_owned(), self.0.clone())].into()),
            other => Err(mecha_secrets::SecretError::NotFound(other.to_owned())),
        }
    }
    async fn bulk(
        &self,
        _: &mecha_secrets::Metadata,
    ) -> Result<std::collections::BTreeMap<String, mecha_secrets::Secret>, mecha_secrets::SecretError>
    {
        Ok(Default::default())
    }
}

impl Factory<dyn SecretStore> for FakeSecretsFactory {
    fn type_name(&self) -> &'static str {
        "secretstores.fake"
    }
    fn configure(
        &self,
        _: &str,
        meta: &MetadataReader<'_>,
        _: &ComponentContext,
    ) -> Box<dyn Builder<dyn SecretStore>> {
        Box::new(FakeSecretsBuilder(meta.string_or("value", "")))
    }
}

struct FakeSecretsBuilder(String);

#[async_trait]
impl Builder<dyn SecretStore> for FakeSecretsBuilder {
    async fn build(self: Box<Self>) -> anyhow::Result<Arc<dyn SecretStore>> {
        Ok(Arc::new(FakeSecrets(self.0)))
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register::<StateBlock>(FakeFactory);
    registry.register::<mecha_secrets::SecretsBlock>(FakeSecretsFactory);
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
    let (plan, report) = plan(
        &components,
        &registry(),
        &info(),
        RuntimeSettings::default(),
    );
    assert!(plan.is_empty());
    let messages: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    let expect = [
        (
            "component 'unknown'",
            "known types: secretstores.fake, state.fake",
        ),
        ("component 'v'", "unsupported version 'v9'"),
        ("component 'missing'", "'needed' is missing"),
        ("component 'secret'", "names no secret store"),
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
    let (_, report) = plan(
        &components,
        &registry(),
        &info(),
        RuntimeSettings::default(),
    );
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
    let (plan, report) = plan(
        &components,
        &registry(),
        &info(),
        RuntimeSettings::default(),
    );
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
    let store = super::plan(
        &components,
        &registry(),
        &info(),
        RuntimeSettings::default(),
    )
    .0
    .build()
    .await
    .unwrap();
    let entry = store.get::<StateBlock>("good").unwrap();
    assert!(entry.actor_state_store);
    assert_eq!(
        store.infos()[0].capabilities,
        vec!["ETAG", "TRANSACTIONAL", "ACTOR"]
    );
}

fn secret_ref(name: &str, key: &str) -> MetadataSource {
    MetadataSource::SecretKeyRef {
        name: name.into(),
        key: key.into(),
    }
}

#[tokio::test]
async fn secret_key_refs_are_resolved_from_their_store_first() {
    let using = |name: &str, secret: &str, key: &str| {
        let mut c = component(name, "state.fake", &[("needed", secret_ref(secret, key))]);
        c.secret_store = Some("vault".into());
        c
    };
    // The secret's value reaches the component: "boom" fails its build.
    for (value, fails) in [("fine", false), ("boom", true)] {
        let components = vec![
            using("uses", "s", "k"),
            component(
                "vault",
                "secretstores.fake",
                &[("value", super::tests::value(value))],
            ),
        ];
        let (plan, report) = plan(
            &components,
            &registry(),
            &info(),
            RuntimeSettings::default(),
        );
        assert!(report.is_ok(), "{report:?}");
        let built = plan.build().await;
        match (fails, built) {
            (false, Ok(store)) => {
                assert!(store.get::<StateBlock>("uses").is_some());
                assert!(store.get::<mecha_secrets::SecretsBlock>("vault").is_some());
            }
            (true, Err(errors)) => assert!(errors[0].contains("backend refused"), "{errors:?}"),
            (_, other) => panic!("{value}: {:?}", other.err()),
        }
    }
    // A missing secret or key is a clear build error.
    let components = vec![
        using("nosecret", "missing", "k"),
        component(
            "vault",
            "secretstores.fake",
            &[("value", super::tests::value("v"))],
        ),
    ];
    let errors = plan(
        &components,
        &registry(),
        &info(),
        RuntimeSettings::default(),
    )
    .0
    .build()
    .await
    .err()
    .unwrap();
    assert!(
        errors[0].contains("cannot read secretKeyRef 'missing'") && errors[0].contains("'vault'"),
        "{errors:?}"
    );
    // A store that is not defined is a planning error.
    let components = vec![using("orphan", "s", "k")];
    let (_, report) = plan(
        &components,
        &registry(),
        &info(),
        RuntimeSettings::default(),
    );
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.to_string().contains("'vault', which is not defined")),
        "{report:?}"
    );
}
