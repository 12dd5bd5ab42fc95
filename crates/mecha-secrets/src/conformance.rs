//! The secret store conformance suite: every secret store must pass it
//! against its real backend. [`secrets_conformance!`](crate::secrets_conformance)
//! expands it into one `#[tokio::test]` per case.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::*;

/// Gives each case a store holding exactly the secrets it asks for.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A store holding these single-valued secrets (and nothing else it
    /// would list in a bulk read), or `None` to skip the case.
    async fn component(&self, secrets: &[(&str, &str)]) -> Option<Arc<dyn SecretStore>>;

    /// A store holding these multi-valued secrets, for stores that can;
    /// `None` when the store cannot hold them.
    async fn multi_valued(
        &self,
        secrets: &[(&str, &[(&str, &str)])],
    ) -> Option<Arc<dyn SecretStore>> {
        let _ = secrets;
        None
    }
}

const FIXTURE: &[(&str, &str)] = &[
    ("db-password", "s3cr3t"),
    ("api_key", "key with spaces = and signs"),
    ("unicode", "clé 🔑 ключ"),
    ("empty", ""),
];

fn single(name: &str, value: &str) -> Secret {
    [(name.to_owned(), value.to_owned())].into()
}

/// A secret is its name with its value.
pub async fn get_returns_the_secret(harness: &impl Harness) {
    let Some(store) = harness.component(FIXTURE).await else {
        return;
    };
    for (name, value) in FIXTURE {
        let secret = store
            .get(name, &Metadata::new())
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(secret, single(name, value), "{name}");
    }
}

/// A secret that is not there is an error that says so.
pub async fn missing_secret_is_not_found(harness: &impl Harness) {
    let Some(store) = harness.component(FIXTURE).await else {
        return;
    };
    let err = store
        .get("no-such-secret", &Metadata::new())
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::NotFound(_)), "{err}");
}

/// A bulk read returns every secret, each as a single read would.
pub async fn bulk_returns_every_secret(harness: &impl Harness) {
    let Some(store) = harness.component(FIXTURE).await else {
        return;
    };
    let all = store.bulk(&Metadata::new()).await.unwrap();
    let expected: BTreeMap<String, Secret> = FIXTURE
        .iter()
        .map(|(name, value)| ((*name).to_owned(), single(name, value)))
        .collect();
    assert_eq!(all, expected);
}

/// Scopes apply to reads and filter bulk reads.
pub async fn scopes_apply(harness: &impl Harness) {
    let Some(store) = harness.component(FIXTURE).await else {
        return;
    };
    let scope = SecretScope {
        deny_by_default: true,
        allowed: ["api_key".to_owned()].into(),
        denied: Default::default(),
    };
    let secrets = SecretsHandle::new("conformance", store).with_scope(Some(scope));
    let err = secrets
        .get("db-password", &Metadata::new())
        .await
        .unwrap_err();
    assert!(matches!(err, AccessError::Denied { .. }), "{err}");
    assert_eq!(
        secrets.get("api_key", &Metadata::new()).await.unwrap(),
        single("api_key", FIXTURE[1].1)
    );
    let all = secrets.bulk(&Metadata::new()).await.unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["api_key"]);
    assert_eq!(
        secrets.resolve("api_key", "api_key").await.unwrap(),
        FIXTURE[1].1
    );
}

/// Stores that hold several values per secret give them all, by key.
pub async fn multi_valued_secrets(harness: &impl Harness) {
    let values: &[(&str, &str)] = &[("username", "admin"), ("password", "p@ss")];
    let Some(store) = harness
        .multi_valued(&[("database", values), ("plain", &[("plain", "v")])])
        .await
    else {
        return;
    };
    assert!(
        store
            .features()
            .contains(&Feature::MultipleKeyValuesPerSecret),
        "a multi-valued store declares it"
    );
    let expected: Secret = values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(
        store.get("database", &Metadata::new()).await.unwrap(),
        expected
    );
    let all = store.bulk(&Metadata::new()).await.unwrap();
    assert_eq!(all.get("database"), Some(&expected));
    assert_eq!(all.get("plain"), Some(&single("plain", "v")));
    let secrets = SecretsHandle::new("conformance", store);
    assert_eq!(
        secrets.resolve("database", "password").await.unwrap(),
        "p@ss"
    );
    assert!(secrets.resolve("database", "nope").await.is_err());
}

/// Expands the secret store conformance suite into one `#[tokio::test]`
/// per case for a harness type that implements `Default` and [`Harness`].
#[macro_export]
macro_rules! secrets_conformance {
    ($harness:ty) => {
        $crate::secrets_conformance!(@cases $harness;
            get_returns_the_secret, missing_secret_is_not_found,
            bulk_returns_every_secret, scopes_apply, multi_valued_secrets);
    };
    (@cases $harness:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let harness = <$harness as ::core::default::Default>::default();
                $crate::conformance::$case(&harness).await;
            }
        )*
    };
}
