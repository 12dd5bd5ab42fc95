//! Loading components in two phases: [`plan`] is pure (it validates every
//! resource against the registry and reports every problem at once, so
//! `mecha validate` can use it), and [`Plan::build`] connects.
//!
//! Secret stores are built first: a component whose metadata uses a
//! `secretKeyRef` is configured again once its `auth.secretStore` is up and
//! the references are resolved (at planning time its other metadata is
//! checked, with the references counted as given).

use std::collections::HashMap;
use std::time::Duration;

use std::sync::Arc;

use mecha_bindings::{Binding, Directions, InputBinding, OutputBinding};
use mecha_config::{Component, MetadataSource, Report};
use mecha_configuration::{ConfigurationStore, Configurations};
use mecha_core::{Builder, ComponentContext, Factory, MetadataReader, Properties};
use mecha_lock::{LockPrefix, LockStore, Locks};
use mecha_pubsub::{Broker, PubSub, ScopeSettings, TopicScopes};
use mecha_secrets::{SecretScope, SecretStore, Secrets};
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

/// A live binding: its directions, as its `direction` metadata limits them.
#[derive(Clone)]
pub struct BindingEntry {
    pub name: String,
    pub input: Option<Arc<dyn InputBinding>>,
    pub output: Option<Arc<dyn OutputBinding>>,
    /// Where the app gets its input events (`route`, or `/{name}`).
    pub route: String,
    /// `direction`, when given: then the app is not asked whether it takes
    /// the input.
    pub directions: Option<Directions>,
}

/// The live components, by name.
#[derive(Default)]
pub struct ComponentStore {
    state: HashMap<String, StateEntry>,
    pubsub: HashMap<String, Broker>,
    locks: HashMap<String, Locks>,
    secrets: HashMap<String, Secrets>,
    configurations: HashMap<String, Configurations>,
    bindings: HashMap<String, BindingEntry>,
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

    pub fn lock(&self, name: &str) -> Option<&Locks> {
        self.locks.get(name)
    }

    pub fn has_lock_stores(&self) -> bool {
        !self.locks.is_empty()
    }

    pub fn secret_store(&self, name: &str) -> Option<&Secrets> {
        self.secrets.get(name)
    }

    pub fn has_secret_stores(&self) -> bool {
        !self.secrets.is_empty()
    }

    fn add_secrets(&mut self, component: &Component, secrets: Secrets) {
        self.infos.push(ComponentInfo {
            name: component.name.clone(),
            type_name: component.type_name.clone(),
            version: component.version.clone(),
            capabilities: secrets
                .features()
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
        });
        self.secrets.insert(component.name.clone(), secrets);
    }

    pub fn configuration(&self, name: &str) -> Option<&Configurations> {
        self.configurations.get(name)
    }

    pub fn has_configuration_stores(&self) -> bool {
        !self.configurations.is_empty()
    }

    /// Every configuration store.
    pub fn configurations(&self) -> impl Iterator<Item = &Configurations> {
        self.configurations.values()
    }

    fn add_configuration(&mut self, component: &Component, configurations: Configurations) {
        self.infos.push(ComponentInfo {
            name: component.name.clone(),
            type_name: component.type_name.clone(),
            version: component.version.clone(),
            capabilities: Vec::new(),
        });
        self.configurations
            .insert(component.name.clone(), configurations);
    }

    pub fn binding(&self, name: &str) -> Option<&BindingEntry> {
        self.bindings.get(name)
    }

    /// Every binding.
    pub fn bindings(&self) -> impl Iterator<Item = &BindingEntry> {
        self.bindings.values()
    }

    fn add_binding(&mut self, component: &Component, entry: BindingEntry) {
        let mut capabilities = Vec::new();
        if entry.input.is_some() {
            capabilities.push("INPUT_BINDING".to_owned());
        }
        if entry.output.is_some() {
            capabilities.push("OUTPUT_BINDING".to_owned());
        }
        self.infos.push(ComponentInfo {
            name: component.name.clone(),
            type_name: component.type_name.clone(),
            version: component.version.clone(),
            capabilities,
        });
        self.bindings.insert(component.name.clone(), entry);
    }

    fn add_lock(&mut self, component: &Component, locks: Locks) {
        self.infos.push(ComponentInfo {
            name: component.name.clone(),
            type_name: component.type_name.clone(),
            version: component.version.clone(),
            capabilities: Vec::new(),
        });
        self.locks.insert(component.name.clone(), locks);
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
    Lock {
        builder: Box<dyn Builder<dyn LockStore>>,
        prefix: LockPrefix,
    },
    Secrets {
        builder: Box<dyn Builder<dyn SecretStore>>,
    },
    Configuration {
        builder: Box<dyn Builder<dyn ConfigurationStore>>,
    },
    Binding {
        builder: Box<dyn Builder<dyn Binding>>,
        directions: Option<Directions>,
        route: String,
    },
    /// Configured once its secret references are resolved.
    Deferred(Box<Deferred>),
}

/// A `secretKeyRef` of one metadata item.
#[derive(Clone, Debug)]
struct SecretRef {
    item: String,
    store: String,
    secret: String,
    key: String,
}

/// A component waiting for its secrets.
struct Deferred {
    factory: Found,
    properties: Properties,
    refs: Vec<SecretRef>,
    ctx: ComponentContext,
}

struct Planned {
    component: Component,
    build: PlannedBuild,
}

impl Planned {
    fn is_actor_state_store(&self) -> bool {
        let is_actor_store = |build: &PlannedBuild| {
            matches!(
                build,
                PlannedBuild::State {
                    actor_state_store: true,
                    ..
                }
            )
        };
        match &self.build {
            PlannedBuild::Deferred(deferred) => {
                matches!(deferred.factory, Found::State(_))
                    && deferred
                        .properties
                        .get("actorStateStore")
                        .and_then(mecha_core::metadata::parse_bool)
                        .unwrap_or(false)
            }
            build => is_actor_store(build),
        }
    }

    fn is_secret_store(&self) -> bool {
        matches!(self.build, PlannedBuild::Secrets { .. })
    }
}

/// Validated components, ready to be built.
#[derive(Default)]
pub struct Plan {
    components: Vec<Planned>,
    info: RuntimeInfo,
    secret_scopes: HashMap<String, SecretScope>,
}

/// The factory of a component's type, whichever its block.
#[derive(Clone)]
enum Found {
    State(Arc<dyn Factory<dyn StateStore>>),
    PubSub(Arc<dyn Factory<dyn PubSub>>),
    Lock(Arc<dyn Factory<dyn LockStore>>),
    Secrets(Arc<dyn Factory<dyn SecretStore>>),
    Configuration(Arc<dyn Factory<dyn ConfigurationStore>>),
    Binding(Arc<dyn Factory<dyn Binding>>),
}

impl Found {
    fn versions(&self) -> &'static [&'static str] {
        match self {
            Found::State(f) => f.versions(),
            Found::PubSub(f) => f.versions(),
            Found::Lock(f) => f.versions(),
            Found::Secrets(f) => f.versions(),
            Found::Configuration(f) => f.versions(),
            Found::Binding(f) => f.versions(),
        }
    }
}

/// Reads the keys the runtime takes itself, then configures the component
/// (pure; problems go to the reader).
fn configure(
    factory: &Found,
    component: &Component,
    reader: &MetadataReader<'_>,
    ctx: &ComponentContext,
    info: &RuntimeInfo,
) -> PlannedBuild {
    match factory {
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
                builder: factory.configure(&component.version, reader, ctx),
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
            // As daprd: metadata naming `{namespace}` makes the topics of the
            // component the namespace's own.
            let namespaced = component.metadata.iter().any(|item| {
                matches!(&item.source, MetadataSource::Value(v) if v.contains("{namespace}"))
            });
            let topic_prefix = match (&info.namespace, namespaced) {
                (Some(namespace), true) => namespace.clone(),
                _ => String::new(),
            };
            PlannedBuild::PubSub {
                builder: factory.configure(&component.version, reader, ctx),
                scopes,
                topic_prefix,
            }
        }
        Found::Lock(factory) => {
            let prefix =
                LockPrefix::parse(reader.string("keyPrefix").as_deref()).unwrap_or_else(|err| {
                    reader.error(format!("metadata field 'keyPrefix': {err}"));
                    LockPrefix::AppId
                });
            PlannedBuild::Lock {
                builder: factory.configure(&component.version, reader, ctx),
                prefix,
            }
        }
        Found::Secrets(factory) => PlannedBuild::Secrets {
            builder: factory.configure(&component.version, reader, ctx),
        },
        Found::Configuration(factory) => PlannedBuild::Configuration {
            builder: factory.configure(&component.version, reader, ctx),
        },
        Found::Binding(factory) => {
            let directions = Directions::parse(reader.string("direction").as_deref())
                .unwrap_or_else(|err| {
                    reader.error(format!("metadata field 'direction': {err}"));
                    None
                });
            let route = reader
                .string("route")
                .map(|r| {
                    if r.starts_with('/') {
                        r
                    } else {
                        format!("/{r}")
                    }
                })
                .unwrap_or_else(|| format!("/{}", component.name));
            PlannedBuild::Binding {
                builder: factory.configure(&component.version, reader, ctx),
                directions,
                route,
            }
        }
    }
}

/// Reports what a reader found: errors, and keys nothing read as warnings.
fn report_reader(report: &mut Report, component: &Component, reader: &MetadataReader<'_>) {
    let label = Some(component.label());
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
}

/// Validates every component against the registry without any I/O.
pub fn plan(components: &[Component], registry: &Registry, info: &RuntimeInfo) -> (Plan, Report) {
    let mut plan = Plan {
        info: info.clone(),
        ..Plan::default()
    };
    let mut report = Report::default();
    let secret_stores: Vec<&str> = components
        .iter()
        .filter(|c| c.block() == "secretstores")
        .map(|c| c.name.as_str())
        .collect();
    for component in components {
        let label = Some(component.label());
        let mut fail = |message: String| report.error(&component.file, label.clone(), message);
        let factory = match component.block() {
            "state" => registry
                .state(&component.type_name)
                .cloned()
                .map(Found::State),
            "pubsub" => registry
                .pubsub(&component.type_name)
                .cloned()
                .map(Found::PubSub),
            "lock" => registry
                .lock(&component.type_name)
                .cloned()
                .map(Found::Lock),
            "secretstores" => registry
                .secrets(&component.type_name)
                .cloned()
                .map(Found::Secrets),
            "configuration" => registry
                .configuration(&component.type_name)
                .cloned()
                .map(Found::Configuration),
            "bindings" => registry
                .binding(&component.type_name)
                .cloned()
                .map(Found::Binding),
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
        let resolved = resolve_properties(component, info);
        let errors_before = report.errors.len();
        let mut properties = resolved.properties;
        for problem in &resolved.problems {
            report.error(&component.file, label.clone(), problem.clone());
        }
        for secret in &resolved.refs {
            if matches!(factory, Found::Secrets(_)) {
                report.error(
                    &component.file,
                    label.clone(),
                    format!(
                        "metadata '{}' uses a secretKeyRef, which a secret store cannot use",
                        secret.item
                    ),
                );
            } else if !secret_stores.contains(&secret.store.as_str()) {
                report.error(
                    &component.file,
                    label.clone(),
                    format!(
                        "metadata '{}' uses secretKeyRef '{}' through secret store '{}', which is not defined",
                        secret.item, secret.secret, secret.store
                    ),
                );
            }
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
        let unresolved = resolved
            .unresolved
            .iter()
            .cloned()
            .chain(resolved.refs.iter().map(|r| r.item.clone()));
        let reader = MetadataReader::new(&properties).with_unresolved(unresolved);
        let ctx = ComponentContext {
            name: component.name.clone(),
            app_id: info.app_id.clone(),
            namespace: info.namespace.clone(),
            data_dir: info.data_dir.clone(),
        };
        let mut build = configure(&factory, component, &reader, &ctx, info);
        report_reader(&mut report, component, &reader);
        if !resolved.refs.is_empty() {
            build = PlannedBuild::Deferred(Box::new(Deferred {
                factory,
                properties,
                refs: resolved.refs,
                ctx,
            }));
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

/// A component's metadata resolved as far as planning can: literal values
/// and `envRef`s; `secretKeyRef`s wait for their secret store.
struct Resolved {
    properties: Properties,
    /// Problems, each naming its metadata item.
    problems: Vec<String>,
    /// Items that could not be resolved (a problem was reported).
    unresolved: Vec<String>,
    refs: Vec<SecretRef>,
}

fn resolve_properties(component: &Component, info: &RuntimeInfo) -> Resolved {
    let mut resolved = Resolved {
        properties: Properties::new(),
        problems: Vec::new(),
        unresolved: Vec::new(),
        refs: Vec::new(),
    };
    let push =
        |name: &str, value: &str, resolved: &mut Resolved| match expand_templates(value, info) {
            Ok(value) => resolved.properties.0.push((name.to_owned(), value)),
            Err(problem) => {
                resolved
                    .problems
                    .push(format!("metadata '{name}': {problem}"));
                resolved.unresolved.push(name.to_owned());
            }
        };
    for item in &component.metadata {
        match &item.source {
            MetadataSource::Value(value) => push(&item.name, value, &mut resolved),
            MetadataSource::EnvRef(variable) => match std::env::var(variable) {
                Ok(value) => push(&item.name, &value, &mut resolved),
                Err(_) => {
                    resolved.problems.push(format!(
                        "metadata '{}' refers to the environment variable '{variable}', which is not set",
                        item.name
                    ));
                    resolved.unresolved.push(item.name.clone());
                }
            },
            MetadataSource::SecretKeyRef { name, key } => match &component.secret_store {
                Some(store) => resolved.refs.push(SecretRef {
                    item: item.name.clone(),
                    store: store.clone(),
                    secret: name.clone(),
                    key: if key.is_empty() {
                        name.clone()
                    } else {
                        key.clone()
                    },
                }),
                None => {
                    resolved.problems.push(format!(
                        "metadata '{}' uses secretKeyRef '{name}', but the component names no secret store to read it from (auth.secretStore)",
                        item.name
                    ));
                    resolved.unresolved.push(item.name.clone());
                }
            },
        }
    }
    resolved
}

/// A built component.
enum Live {
    State(StateEntry),
    PubSub(Broker),
    Lock(Locks),
    Secrets(Secrets),
    Configuration(Configurations),
    Binding(BindingEntry),
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

/// Builds one configured component within its `initTimeout`.
async fn build_one(
    component: &Component,
    build: PlannedBuild,
    app_id: &str,
    scopes: &HashMap<String, SecretScope>,
) -> Result<Live, String> {
    let timeout = component.init_timeout;
    let name = component.name.clone();
    match build {
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
                Broker::new(name, app_id.to_owned(), live, scopes).with_topic_prefix(topic_prefix),
            )
        }),
        PlannedBuild::Lock { builder, prefix } => within(timeout, builder.build())
            .await
            .map(|live| Live::Lock(Locks::new(name, live, &prefix, app_id))),
        PlannedBuild::Secrets { builder } => within(timeout, builder.build()).await.map(|live| {
            let scope = scopes.get(&name).cloned();
            Live::Secrets(Secrets::new(name, live).with_scope(scope))
        }),
        PlannedBuild::Configuration { builder } => within(timeout, builder.build())
            .await
            .map(|live| Live::Configuration(Configurations::new(name, live))),
        PlannedBuild::Binding {
            builder,
            directions,
            route,
        } => within(timeout, builder.build()).await.map(|live| {
            let wants =
                |input: bool| directions.is_none_or(|d| if input { d.input } else { d.output });
            Live::Binding(BindingEntry {
                input: live.clone().input().filter(|_| wants(true)),
                output: live.output().filter(|_| wants(false)),
                name,
                route,
                directions,
            })
        }),
        PlannedBuild::Deferred(_) => Err("its secrets were not resolved".into()),
    }
}

/// Resolves a component's `secretKeyRef`s from the secret stores built so
/// far, and configures it with them.
async fn resolve_deferred(
    store: &ComponentStore,
    component: &Component,
    deferred: Deferred,
    info: &RuntimeInfo,
) -> Result<PlannedBuild, String> {
    let Deferred {
        factory,
        mut properties,
        refs,
        ctx,
    } = deferred;
    for secret in &refs {
        let secrets = store.secret_store(&secret.store).ok_or_else(|| {
            format!(
                "metadata '{}': secret store '{}' did not load",
                secret.item, secret.store
            )
        })?;
        let problem = |err: String| {
            format!(
                "metadata '{}': cannot read secretKeyRef '{}' (key '{}') from secret store '{}': {err}",
                secret.item, secret.secret, secret.key, secret.store
            )
        };
        let value = tokio::time::timeout(
            component.init_timeout,
            secrets.resolve(&secret.secret, &secret.key),
        )
        .await
        .map_err(|_| {
            problem(format!(
                "no answer within {}",
                human(component.init_timeout)
            ))
        })?
        .map_err(|err| problem(err.to_string()))?;
        properties.0.push((secret.item.clone(), value));
    }
    let reader = MetadataReader::new(&properties);
    let build = configure(&factory, component, &reader, &ctx, info);
    let errors = reader.errors();
    if errors.is_empty() {
        Ok(build)
    } else {
        Err(errors.join("; "))
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

    /// The `spec.secrets.scopes` of the Configuration, by store name.
    pub fn with_secret_scopes(mut self, scopes: HashMap<String, SecretScope>) -> Self {
        self.secret_scopes = scopes;
        self
    }

    /// Builds the secret stores, then every other component concurrently
    /// (those with `secretKeyRef`s once resolved), each within its
    /// `initTimeout`. A failure is fatal unless the component sets
    /// `ignoreErrors`.
    pub async fn build(self) -> Result<ComponentStore, Vec<String>> {
        let Plan {
            components,
            info,
            secret_scopes,
        } = self;
        let app_id = info.app_id.clone();
        let (secret_stores, others): (Vec<Planned>, Vec<Planned>) =
            components.into_iter().partition(Planned::is_secret_store);
        let mut store = ComponentStore::default();
        let mut errors = Vec::new();
        let mut settle = |store: &mut ComponentStore,
                          component: Component,
                          result: Result<Live, String>| {
            match result {
                Ok(live) => {
                    tracing::info!(name = %component.name, kind = %component.type_name, "component loaded");
                    match live {
                        Live::State(entry) => store.add_state(&component, entry),
                        Live::PubSub(broker) => store.add_pubsub(&component, broker),
                        Live::Lock(locks) => store.add_lock(&component, locks),
                        Live::Secrets(secrets) => store.add_secrets(&component, secrets),
                        Live::Configuration(c) => store.add_configuration(&component, c),
                        Live::Binding(entry) => store.add_binding(&component, entry),
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
        };
        let built = futures::future::join_all(secret_stores.into_iter().map(|planned| async {
            let live = build_one(&planned.component, planned.build, &app_id, &secret_scopes).await;
            (planned.component, live)
        }))
        .await;
        for (component, live) in built {
            settle(&mut store, component, live);
        }
        let mut ready = Vec::new();
        for planned in others {
            match planned.build {
                PlannedBuild::Deferred(deferred) => {
                    match resolve_deferred(&store, &planned.component, *deferred, &info).await {
                        Ok(build) => ready.push(Planned {
                            component: planned.component,
                            build,
                        }),
                        Err(err) => settle(&mut store, planned.component, Err(err)),
                    }
                }
                _ => ready.push(planned),
            }
        }
        let built = futures::future::join_all(ready.into_iter().map(|planned| async {
            let live = build_one(&planned.component, planned.build, &app_id, &secret_scopes).await;
            (planned.component, live)
        }))
        .await;
        for (component, live) in built {
            settle(&mut store, component, live);
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
