//! The name resolution conformance suite. A harness gives resolvers that
//! share one backend, as the runtimes of one host (or cluster) do; each case
//! uses app ids of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{NameResolver, Registration};

#[async_trait]
pub trait Harness: Send + Sync {
    /// A new resolver over the shared backend, or `None` to skip.
    async fn resolver(&self) -> Option<Arc<dyn NameResolver>>;
    /// A unique prefix for this case's app ids.
    fn unique(&self, name: &str) -> String;
}

/// How long a registration or its removal may take to show. Registries
/// answer at once; multicast and DNS resolvers are eventually consistent.
const SETTLE: Duration = Duration::from_secs(5);

/// Resolves until `want` holds (the answer sorted), or fails after SETTLE.
async fn eventually(
    resolver: &Arc<dyn NameResolver>,
    app: &str,
    ns: Option<&str>,
    want: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut found = resolver.resolve(app, ns).await.unwrap();
        found.sort();
        if want(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{app}: still {found:?} after {SETTLE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn registration(app_id: &str, namespace: Option<&str>, port: u16) -> Registration {
    Registration {
        app_id: app_id.to_owned(),
        namespace: namespace.map(str::to_owned),
        host: Some("127.0.0.1".into()),
        port,
    }
}

/// An app nobody registered is not found, at once.
pub async fn unknown_app_is_not_found_quickly(harness: &impl Harness) {
    let Some(resolver) = harness.resolver().await else {
        return;
    };
    let started = Instant::now();
    let found = resolver
        .resolve(&harness.unique("nobody"), None)
        .await
        .unwrap();
    assert!(found.is_empty(), "{found:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered quickly"
    );
}

/// What one runtime registers another finds.
pub async fn registered_app_is_found_by_others(harness: &impl Harness) {
    let (Some(a), Some(b)) = (harness.resolver().await, harness.resolver().await) else {
        return;
    };
    let app = harness.unique("app");
    a.register(&registration(&app, None, 41001)).await.unwrap();
    let found = eventually(&b, &app, None, |f| !f.is_empty()).await;
    assert_eq!(found, vec!["127.0.0.1:41001".to_owned()]);
    a.close().await.unwrap();
}

/// Two runtimes of one app are both found.
pub async fn every_instance_is_found(harness: &impl Harness) {
    let (Some(a), Some(b), Some(c)) = (
        harness.resolver().await,
        harness.resolver().await,
        harness.resolver().await,
    ) else {
        return;
    };
    let app = harness.unique("scaled");
    a.register(&registration(&app, None, 41002)).await.unwrap();
    b.register(&registration(&app, None, 41003)).await.unwrap();
    let found = eventually(&c, &app, None, |f| f.len() >= 2).await;
    assert_eq!(
        found,
        vec!["127.0.0.1:41002".to_owned(), "127.0.0.1:41003".to_owned()]
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Namespaces keep apps of the same id apart.
pub async fn namespaces_are_separate(harness: &impl Harness) {
    let (Some(a), Some(b)) = (harness.resolver().await, harness.resolver().await) else {
        return;
    };
    let app = harness.unique("ns");
    a.register(&registration(&app, Some("prod"), 41004))
        .await
        .unwrap();
    let found = eventually(&b, &app, Some("prod"), |f| !f.is_empty()).await;
    assert_eq!(found, vec!["127.0.0.1:41004".to_owned()]);
    assert!(b.resolve(&app, Some("dev")).await.unwrap().is_empty());
    assert!(b.resolve(&app, None).await.unwrap().is_empty());
    a.close().await.unwrap();
}

/// A closed registration is gone.
pub async fn closed_registrations_are_gone(harness: &impl Harness) {
    let (Some(a), Some(b)) = (harness.resolver().await, harness.resolver().await) else {
        return;
    };
    let app = harness.unique("closing");
    a.register(&registration(&app, None, 41005)).await.unwrap();
    eventually(&b, &app, None, |f| f.len() == 1).await;
    a.close().await.unwrap();
    eventually(&b, &app, None, <[String]>::is_empty).await;
}

/// Expands the suite into one `#[tokio::test]` per case.
#[macro_export]
macro_rules! nameresolution_conformance {
    ($harness:ty) => {
        $crate::nameresolution_conformance!(@cases $harness;
            unknown_app_is_not_found_quickly, registered_app_is_found_by_others,
            every_instance_is_found, namespaces_are_separate, closed_registrations_are_gone);
    };
    (@cases $harness:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = <$harness as ::core::default::Default>::default();
                $crate::conformance::$case(&harness).await;
            }
        )*
    };
}
