use super::*;
use proptest::prelude::*;

fn options() -> LoadOptions {
    LoadOptions {
        app_id: Some("myapp".into()),
        namespace: Some("default".into()),
    }
}

fn load_text(text: &str) -> (Resources, Report) {
    let mut resources = Resources::default();
    let mut report = Report::default();
    parse_documents(
        Path::new("test.yaml"),
        text,
        &options(),
        &mut resources,
        &mut report,
    );
    check_duplicates(&resources, &mut report);
    (resources, report)
}

const STATESTORE: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
  namespace: default
spec:
  type: state.sqlite
  version: v1
  initTimeout: 10s
  ignoreErrors: true
  metadata:
  - name: connectionString
    value: "data.db"
  - name: timeout
    value: 010
  - name: actorStateStore
    value: true
  - name: password
    secretKeyRef:
      name: db-secret
      key: pw
  - name: host
    envRef: DB_HOST
  - name: empty
auth:
  secretStore: local-secrets
scopes: [myapp, other]
"#;

#[test]
fn a_full_component() {
    let (resources, report) = load_text(STATESTORE);
    assert!(report.is_ok(), "{report:?}");
    let c = &resources.components[0];
    assert_eq!(c.name, "statestore");
    assert_eq!(c.type_name, "state.sqlite");
    assert_eq!(c.block(), "state");
    assert_eq!(c.version, "v1");
    assert_eq!(c.init_timeout, Duration::from_secs(10));
    assert!(c.ignore_errors);
    assert_eq!(c.secret_store.as_deref(), Some("local-secrets"));
    let sources: Vec<(&str, &MetadataSource)> = c
        .metadata
        .iter()
        .map(|m| (m.name.as_str(), &m.source))
        .collect();
    assert_eq!(
        sources,
        vec![
            ("connectionString", &MetadataSource::Value("data.db".into())),
            ("timeout", &MetadataSource::Value("010".into())),
            ("actorStateStore", &MetadataSource::Value("true".into())),
            (
                "password",
                &MetadataSource::SecretKeyRef {
                    name: "db-secret".into(),
                    key: "pw".into()
                }
            ),
            ("host", &MetadataSource::EnvRef("DB_HOST".into())),
            ("empty", &MetadataSource::Value(String::new())),
        ]
    );
}

#[test]
fn multi_document_files_and_other_kinds() {
    let text = format!(
        "{STATESTORE}\n---\n# a comment only\n---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: sub\nspec:\n  pubsubname: p\n  topic: t\n  route: /t\n---\napiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: r\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: two\nspec:\n  type: state.in-memory\n"
    );
    let (resources, report) = load_text(&text);
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(resources.components.len(), 2);
    assert_eq!(
        resources.components[1].version, "v1",
        "empty version reads as v1"
    );
    assert_eq!(resources.subscriptions.len(), 1);
    assert_eq!(resources.skipped.len(), 1);
    assert_eq!(resources.skipped[0].kind, "Resiliency");
    assert_eq!(report.warnings.len(), 1, "the ConfigMap is reported");
}

#[test]
fn scopes_and_namespaces_filter() {
    let text = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\nspec:\n  type: state.in-memory\nscopes: [someone-else]\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: b\n  namespace: prod\nspec:\n  type: state.in-memory\n";
    let (resources, report) = load_text(text);
    assert!(report.is_ok());
    assert!(resources.components.is_empty());
    assert_eq!(resources.skipped.len(), 2);
}

#[test]
fn every_error_is_reported_with_file_and_component() {
    let text = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\nspec:\n  type: nodot\n  initTimeout: soon\n  metadata:\n  - value: x\n  - name: both\n    value: x\n    envRef: Y\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: dup\nspec:\n  type: state.in-memory\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: dup\nspec:\n  type: state.in-memory\n---\nkind: [oops\n";
    let (_, report) = load_text(text);
    let messages: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 6, "{messages:#?}");
    assert!(messages.iter().all(|m| m.starts_with("test.yaml")));
    assert!(messages[0].contains("component 'a'") && messages[0].contains("spec.type"));
    assert!(messages.iter().any(|m| m.contains("initTimeout")));
    assert!(messages.iter().any(|m| m.contains("has no name")));
    assert!(messages.iter().any(|m| m.contains("more than one")));
    assert!(
        messages
            .iter()
            .any(|m| m.contains("invalid YAML at line 28")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("component 'dup'") && m.contains("already defined"))
    );
}

#[test]
fn folders_are_read_in_order_and_missing_paths_fail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.yaml"), "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: b\nspec:\n  type: state.in-memory\n").unwrap();
    std::fs::write(dir.path().join("a.yml"), "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\nspec:\n  type: state.in-memory\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
    let missing = dir.path().join("nope");
    let (resources, report) = load_resources(&[dir.path().to_owned(), missing], &options());
    let names: Vec<&str> = resources
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(
        report.errors[0]
            .message
            .contains("cannot read resources path")
    );
}

proptest! {
    /// The loader never panics, whatever the bytes of the file.
    #[test]
    fn loader_never_panics(text in "\\PC{0,300}") {
        let _ = load_text(&text);
    }

    /// Nor on YAML-shaped input built from resource fragments.
    #[test]
    fn loader_never_panics_on_yaml_like_input(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("apiVersion: dapr.io/v1alpha1\n"), Just("kind: Component\n"),
                Just("metadata:\n  name: x\n"), Just("spec:\n  type: state.x\n"),
                Just("  metadata:\n  - name: a\n    value: 1\n"), Just("---\n"),
                Just("scopes: [a]\n"), Just("  version: \n"), Just(": :\n"), Just("  - [\n"),
            ],
            0..12,
        )
    ) {
        let _ = load_text(&parts.concat());
    }
}

#[test]
fn subscriptions_in_both_versions() {
    let text = r#"
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: order-sub
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules:
    - match: 'event.type == "order.v2"'
      path: /orders/v2
    default: /orders
  deadLetterTopic: orders-dlq
  metadata:
    rawPayload: "false"
    count: 3
  bulkSubscribe:
    enabled: true
    maxMessagesCount: 50
scopes: [myapp]
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: v1-sub
spec:
  pubsubname: pubsub
  topic: events
  route: /events
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: elsewhere
spec:
  pubsubname: pubsub
  topic: other
  route: /other
scopes: [another-app]
"#;
    let (resources, report) = load_text(text);
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(
        resources.subscriptions.len(),
        2,
        "the one scoped elsewhere is skipped"
    );
    let v2 = &resources.subscriptions[0];
    assert_eq!(v2.pubsub_name, "pubsub");
    assert_eq!(v2.rules[0].matches, r#"event.type == "order.v2""#);
    assert_eq!(v2.rules[0].path, "/orders/v2");
    assert_eq!(v2.default_route, "/orders");
    assert_eq!(v2.dead_letter_topic.as_deref(), Some("orders-dlq"));
    assert_eq!(v2.metadata["count"], "3");
    let bulk = v2.bulk_subscribe.unwrap();
    assert!(bulk.enabled);
    assert_eq!(bulk.max_messages_count, 50);
    assert_eq!(bulk.max_await_duration_ms, 0);
    assert_eq!(resources.subscriptions[1].route, "/events");
}

#[test]
fn subscription_errors_name_the_resource() {
    let text = r#"
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: broken
spec:
  topic: orders
---
apiVersion: dapr.io/v3
kind: Subscription
metadata:
  name: future
spec:
  pubsubname: p
  topic: t
  route: /t
"#;
    let (resources, report) = load_text(text);
    assert!(resources.subscriptions.is_empty());
    let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    let all = errors.join("\n");
    assert!(all.contains("subscription 'broken'"), "{all}");
    assert!(all.contains("spec.pubsubname is required"), "{all}");
    assert!(all.contains("has no route"), "{all}");
    assert!(all.contains("unsupported apiVersion 'dapr.io/v3'"), "{all}");
}
