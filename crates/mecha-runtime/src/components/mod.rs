//! Loading components in two phases: [`plan`] is pure (it validates every
//! resource against the registry and reports every problem at once, so
//! `mecha validate` can use it), and [`Plan::build`] connects.

use std::collections::HashMap;
use std::time::Duration;

use std::sync::Arc;

use mecha_config::{Component, MetadataSource, Report};
use mecha_core::{Builder, ComponentContext, Factory, MetadataReader, Properties};
use mecha_pubsub::{Broker, PubSub, ScopeSettings, TopicScopes};
use mecha_state::{Feature, KeyPrefix, KeyScheme, StateStore, Store};

use crate::registry::Registry;
use crate::runtime::RuntimeInfo;

/// What the metadata API says about a loaded component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentInfo {
    pub name: String,
    pub type_name: String,
    pub version: String,
    pub capabilities: Vec<String>,
}

/// A live state store.
#[derive(Clone, Debug)]
pub struct StateEntry {
    pub store: Store,
    /// `actorStateStore: "true"`: the store actors and workflows use.
    pub actor_state_store: bool,
}

/// The live components, by name.
#[derive(Default)]
pub struct ComponentStore {
    state: HashMap<String, StateEntry>,
    pubsub: HashMap<String, Broker>,
    infos: Vec<ComponentInfo>,
}

impl ComponentStore {
    pub fn state(&self, name: &str) -> Option<&StateEntry> {
        self.state.get(name)
    }

    pub fn has_state_stores(&self) -> bool {
        !self.state.is_empty()
    }

    pub fn pubsub(&self, name: &str) -> Option<&Broker> {
        self.pubsub.get(name)
    }

    pub fn has_pubsubs(&self) -> bool {
        !self.pubsub.is_empty()
    }

    /// Every pub/sub component.
    pub fn brokers(&self) -> impl Iterator<Item = &Broker> {
        self.pubsub.values()
    }

    fn add_pubsub(&mut self, component: &Component, broker: Broker) {
        self.infos.push(ComponentInfo {
            name: component.name.clone(),
            type_name: component.type_name.clone(),
            version: component.version.clone(),
            capabilities: broker
                .features()
                .iter()
                .filter_map(|f| f.dapr_name())
                .map(str::to_owned)
                .collect(),
        });
        self.pubsub.insert(component.name.clone(), broker);
    }

    /// Every loaded component, in load order.
    pub fn infos(&self) -> &[ComponentInfo] {
        &self.infos
    }

    fn add_state(&mut self, component: &Component, entry: StateEntry) {
        let features = entry.store.features();
        let mut capabilities: Vec<String> =
            features.iter().map(|f| f.as_str().to_owned()).collect();
        // As daprd: a store with ETags and transactions can hold actor state.
        if features.contains(&Feature::Etag) && features.contains(&Feature::Transactional) {
            capabilities.push("ACTOR".to_owned());
        }
        self.infos.push(ComponentInfo {
            name: component.name.clone(),
            type_name: component.type_name.clone(),
            version: component.version.clone(),
            capabilities,
        });
        self.state.insert(component.name.clone(), entry);
    }
}

/// How one validated component is built.
enum PlannedBuild {
    State {
        builder: Box<dyn Builder<dyn StateStore>>,
        keys: KeyScheme,
        actor_state_store: bool,
    },
    PubSub {
        builder: Box<dyn Builder<dyn PubSub>>,
        scopes: TopicScopes,
        topic_prefix: String,
    },
}

struct Planned {
    component: Component,
    build: PlannedBuild,
}

impl Planned {
    fn is_actor_state_store(&self) -> bool {
        matches!(
            self.build,
            PlannedBuild::State {
                actor_state_store: true,
                ..
            }
        )
    }
}

/// Validated components, ready to be built.
#[derive(Default)]
pub struct Plan {
    components: Vec<Planned>,
    app_id: String,
}

/// The factory of a component's type, whichever its block.
enum Found<'r> {
    State(&'r Arc<dyn Factory<dyn StateStore>>),
    PubSub(&'r Arc<dyn Factory<dyn PubSub>>),
}

impl Found<'_> {
    fn versions(&self) -> &'static [&'static str] {
        match self {
            Found::State(f) => f.versions(),
            Found::PubSub(f) => f.versions(),
        }
    }
}

/// Validates every component against the registry without any I/O.
pub fn plan(components: &[Component], registry: &Registry, info: &RuntimeInfo) -> (Plan, Report) {
    let mut plan = Plan {
        app_id: info.app_id.clone(),
        ..Plan::default()
    };
    let mut report = Report::default();
    for component in components {
        let label = Some(component.label());
        let mut fail = |message: String| report.error(&component.file, label.clone(), message);
        let factory = match component.block() {
            "state" => registry.state(&component.type_name).map(Found::State),
            "pubsub" => registry.pubsub(&component.type_name).map(Found::PubSub),
            _ => None,
        };
        let Some(factory) = factory else {
            fail(format!(
                "unknown component type '{}'; known types: {}",
                component.type_name,
                registry.known_types().join(", ")
            ));
            continue;
        };
        if !factory.versions().contains(&component.version.as_str()) {
            fail(format!(
                "unsupported version '{}' of {}; supported: {}",
                component.version,
                component.type_name,
                factory.versions().join(", ")
            ));
            continue;
        }
        let (mut properties, unresolved) = resolve_properties(component, info);
        let errors_before = report.errors.len();
        for (_, problem) in &unresolved {
            report.error(&component.file, label.clone(), problem.clone());
        }
        // As daprd: a pub/sub component's consumer group is the app id
        // unless it says otherwise.
        if matches!(factory, Found::PubSub(_))
            && properties
                .get("consumerID")
                .is_none_or(|v| v.trim().is_empty())
        {
            properties
                .0
                .push(("consumerID".into(), info.app_id.clone()));
        }
        let reader = MetadataReader::new(&properties)
            .with_unresolved(unresolved.into_iter().map(|(name, _)| name));
        let ctx = ComponentContext {
            name: component.name.clone(),
            app_id: info.app_id.clone(),
            namespace: info.namespace.clone(),
            data_dir: info.data_dir.clone(),
        };
        // Keys the runtime reads itself, before the component reads its own.
        let build = match factory {
            Found::State(factory) => {
                let key_prefix = reader.string("keyPrefix");
                let actor_state_store = reader.bool_or("actorStateStore", false);
                let keys = match KeyPrefix::parse(key_prefix.as_deref()) {
                    Ok(prefix) => {
                        prefix.scheme(&info.app_id, &component.name, info.namespace.as_deref())
                    }
                    Err(err) => {
                        reader.error(format!("metadata field 'keyPrefix': {err}"));
                        KeyScheme::raw()
                    }
                };
                PlannedBuild::State {
                    builder: factory.configure(&component.version, &reader, &ctx),
                    keys,
                    actor_state_store,
                }
            }
            Found::PubSub(factory) => {
                let (allowed, protected, publishing, subscribing) = (
                    reader.string("allowedTopics"),
                    reader.string("protectedTopics"),
                    reader.string("publishingScopes"),
                    reader.string("subscriptionScopes"),
                );
                let scopes = TopicScopes::new(
                    &info.app_id,
                    &ScopeSettings {
                        allowed_topics: allowed.as_deref(),
                        protected_topics: protected.as_deref(),
                        publishing_scopes: publishing.as_deref(),
                        subscription_scopes: subscribing.as_deref(),
                    },
                );
                // As daprd: metadata naming `{namespace}` makes the topics
                // of the component the namespace's own.
                let namespaced = component.metadata.iter().any(|item| {
                    matches!(&item.source, MetadataSource::Value(v) if v.contains("{namespace}"))
                });
                let topic_prefix = match (&info.namespace, namespaced) {
                    (Some(namespace), true) => namespace.clone(),
                    _ => String::new(),
                };
                PlannedBuild::PubSub {
                    builder: factory.configure(&component.version, &reader, &ctx),
                    scopes,
                    topic_prefix,
                }
            }
        };
        for error in reader.errors() {
            report.error(&component.file, label.clone(), error);
        }
        for name in reader.unread() {
            report.warning(
                &component.file,
                label.clone(),
                format!(
                    "unknown metadata key '{name}' for {}; ignored",
                    component.type_name
                ),
            );
        }
        if report.errors.len() == errors_before {
            plan.components.push(Planned {
                component: component.clone(),
                build,
            });
        }
    }
    let actor_stores: Vec<&Planned> = plan
        .components
        .iter()
        .filter(|p| p.is_actor_state_store())
        .collect();
    if actor_stores.len() > 1 {
        for planned in &actor_stores[1..] {
            report.error(
                &planned.component.file,
                Some(planned.component.label()),
                format!(
                    "only one state store may set actorStateStore, and '{}' already does",
                    actor_stores[0].component.name
                ),
            );
        }
    }
    (plan, report)
}

/// Dapr's templates in metadata values: `{appID}`, `{namespace}` (as
/// `<namespace>.<appID>`), `{uuid}` (a new one each time) and `{podName}`
/// (`POD_NAME`).
fn expand_templates(value: &str, info: &RuntimeInfo) -> Result<String, String> {
    if !value.contains('{') {
        return Ok(value.to_owned());
    }
    let mut out = value.replace("{appID}", &info.app_id);
    if out.contains("{namespace}") {
        let namespace = info.namespace.as_deref().unwrap_or("default");
        out = out.replace("{namespace}", &format!("{namespace}.{}", info.app_id));
    }
    while out.contains("{uuid}") {
        out = out.replacen("{uuid}", &uuid::Uuid::new_v4().to_string(), 1);
    }
    if out.contains("{podName}") {
        let pod = std::env::var("POD_NAME")
            .ok()
            .filter(|p| !p.is_empty())
            .ok_or("it uses {podName}, but POD_NAME is not set")?;
        out = out.replace("{podName}", &pod);
    }
    Ok(out)
}

/// Resolves each metadata value: literal values as they are, `envRef`s from
/// the environment; `secretKeyRef`s need a secret store. Returns the names
/// that could not be resolved, each with its problem.
fn resolve_properties(
    component: &Component,
    info: &RuntimeInfo,
) -> (Properties, Vec<(String, String)>) {
    let mut properties = Properties::new();
    let mut problems = Vec::new();
    let mut push =
        |name: &str, value: &str, problems: &mut Vec<(String, String)>| match expand_templates(
            value, info,
        ) {
            Ok(value) => properties.0.push((name.to_owned(), value)),
            Err(problem) => {
                problems.push((name.to_owned(), format!("metadata '{name}': {problem}")))
            }
        };
    for item in &component.metadata {
        match &item.source {
            MetadataSource::Value(value) => push(&item.name, value, &mut problems),
            MetadataSource::EnvRef(variable) => match std::env::var(variable) {
                Ok(value) => push(&item.name, &value, &mut problems),
                Err(_) => problems.push((
                    item.name.clone(),
                    format!(
                        "metadata '{}' refers to the environment variable '{variable}', which is not set",
                        item.name
                    ),
                )),
            },
            MetadataSource::SecretKeyRef { name, key } => problems.push((
                item.name.clone(),
                format!(
                    "metadata '{}' uses secretKeyRef '{name}' (key '{key}'){}, but secret stores are not supported by this runtime yet",
                    item.name,
                    component
                        .secret_store
                        .as_ref()
                        .map(|store| format!(" through secret store '{store}'"))
                        .unwrap_or_default()
                ),
            )),
        }
    }
    (properties, problems)
}

/// A built component.
enum Live {
    State(StateEntry),
    PubSub(Broker),
}

async fn within<T: ?Sized>(
    timeout: Duration,
    build: impl std::future::Future<Output = anyhow::Result<Arc<T>>>,
) -> Result<Arc<T>, String> {
    match tokio::time::timeout(timeout, build).await {
        Ok(Ok(live)) => Ok(live),
        Ok(Err(err)) => Err(format!("{err:#}")),
        Err(_) => Err(format!("initialisation timed out after {}", human(timeout))),
    }
}

impl Plan {
    /// How many components will be built.
    pub fn len(&self) -> usize {
        self.components.len()
    }

    pub fn is_empty(&self) -> bool {
        self.components.is_empty()
    }

    /// Builds every component concurrently, each within its `initTimeout`.
    /// A failure is fatal unless the component sets `ignoreErrors`.
    pub async fn build(self) -> Result<ComponentStore, Vec<String>> {
        let app_id = self.app_id;
        let builds = self.components.into_iter().map(|planned| {
            let app_id = app_id.clone();
            async move {
                let component = planned.component;
                let timeout = component.init_timeout;
                let name = component.name.clone();
                let live = match planned.build {
                    PlannedBuild::State {
                        builder,
                        keys,
                        actor_state_store,
                    } => within(timeout, builder.build()).await.map(|live| {
                        Live::State(StateEntry {
                            store: Store::new(name, live, keys),
                            actor_state_store,
                        })
                    }),
                    PlannedBuild::PubSub {
                        builder,
                        scopes,
                        topic_prefix,
                    } => within(timeout, builder.build()).await.map(|live| {
                        Live::PubSub(
                            Broker::new(name, app_id, live, scopes).with_topic_prefix(topic_prefix),
                        )
                    }),
                };
                (component, live)
            }
        });
        let mut store = ComponentStore::default();
        let mut errors = Vec::new();
        for (component, result) in futures::future::join_all(builds).await {
            match result {
                Ok(live) => {
                    tracing::info!(name = %component.name, kind = %component.type_name, "component loaded");
                    match live {
                        Live::State(entry) => store.add_state(&component, entry),
                        Live::PubSub(broker) => store.add_pubsub(&component, broker),
                    }
                }
                Err(err) if component.ignore_errors => {
                    tracing::warn!(name = %component.name, error = %err, "component failed to initialise; ignored (ignoreErrors)");
                }
                Err(err) => errors.push(format!(
                    "{}: {}: failed to initialise: {err}",
                    component.file.display(),
                    component.label()
                )),
            }
        }
        if errors.is_empty() {
            Ok(store)
        } else {
            Err(errors)
        }
    }
}

fn human(duration: Duration) -> String {
    format!("{:?}", duration)
}

#[cfg(test)]
mod tests;
