//! The typed resources.

use std::path::PathBuf;
use std::time::Duration;

/// Where a metadata value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataSource {
    /// The literal text of the YAML scalar.
    Value(String),
    /// A secret, read through the component's `auth.secretStore`.
    SecretKeyRef { name: String, key: String },
    /// An environment variable of the runtime.
    EnvRef(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataItem {
    pub name: String,
    pub source: MetadataSource,
}

/// A `Component` resource (`dapr.io/v1alpha1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    pub namespace: Option<String>,
    /// Such as `state.sqlite`.
    pub type_name: String,
    /// Such as `v1`; an empty `spec.version` reads as `v1`.
    pub version: String,
    pub init_timeout: Duration,
    pub ignore_errors: bool,
    pub metadata: Vec<MetadataItem>,
    /// `auth.secretStore`: where `secretKeyRef`s are resolved.
    pub secret_store: Option<String>,
    pub scopes: Vec<String>,
    /// The file it came from.
    pub file: PathBuf,
}

impl Component {
    /// The building block of the type: `state` for `state.sqlite`.
    pub fn block(&self) -> &str {
        self.type_name.split('.').next().unwrap_or_default()
    }

    /// How the component is named in messages.
    pub fn label(&self) -> String {
        format!("component '{}'", self.name)
    }
}

/// One routing rule of a `Subscription`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRule {
    /// The CEL expression (`match`).
    pub matches: String,
    pub path: String,
}

/// `bulkSubscribe` of a `Subscription`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BulkSubscribe {
    pub enabled: bool,
    pub max_messages_count: i64,
    pub max_await_duration_ms: i64,
}

/// A `Subscription` resource (`dapr.io/v1alpha1` with `spec.route`, or
/// `dapr.io/v2alpha1` with `spec.routes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub name: String,
    pub pubsub_name: String,
    pub topic: String,
    /// The v2alpha1 rules, in order.
    pub rules: Vec<RouteRule>,
    /// `routes.default` (v2alpha1).
    pub default_route: String,
    /// `route` (v1alpha1).
    pub route: String,
    pub metadata: std::collections::BTreeMap<String, String>,
    pub dead_letter_topic: Option<String>,
    pub bulk_subscribe: Option<BulkSubscribe>,
    pub scopes: Vec<String>,
    /// The file it came from.
    pub file: PathBuf,
}

/// A resource that was read but not loaded, and why (logged once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedResource {
    pub file: PathBuf,
    pub kind: String,
    pub name: String,
    pub reason: String,
}

/// Everything loaded from the resources paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub components: Vec<Component>,
    pub subscriptions: Vec<Subscription>,
    pub skipped: Vec<SkippedResource>,
}
