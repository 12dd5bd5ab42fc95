//! Loading components in two phases: [`plan`] is pure (it validates every
//! resource against the registry and reports every problem at once, so
//! `mecha validate` can use it), and [`Plan::build`] connects.

use std::collections::HashMap;
use std::time::Duration;

use mecha_config::{Component, MetadataSource, Report};
use mecha_core::{Builder, ComponentContext, MetadataReader, Properties};
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
    infos: Vec<ComponentInfo>,
}

impl ComponentStore {
    pub fn state(&self, name: &str) -> Option<&StateEntry> {
        self.state.get(name)
    }

    pub fn has_state_stores(&self) -> bool {
        !self.state.is_empty()
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

struct PlannedState {
    component: Component,
    builder: Box<dyn Builder<dyn StateStore>>,
    keys: KeyScheme,
    actor_state_store: bool,
}

/// Validated components, ready to be built.
#[derive(Default)]
pub struct Plan {
    state: Vec<PlannedState>,
}

/// Validates every component against the registry without any I/O.
pub fn plan(components: &[Component], registry: &Registry, info: &RuntimeInfo) -> (Plan, Report) {
    let mut plan = Plan::default();
    let mut report = Report::default();
    for component in components {
        let label = Some(component.label());
        let mut fail = |message: String| report.error(&component.file, label.clone(), message);
        let factory = match component.block() {
            "state" => registry.state(&component.type_name),
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
        let (properties, unresolved) = resolve_properties(component);
        let errors_before = report.errors.len();
        for (_, problem) in &unresolved {
            report.error(&component.file, label.clone(), problem.clone());
        }
        let reader = MetadataReader::new(&properties)
            .with_unresolved(unresolved.into_iter().map(|(name, _)| name));
        // Keys the runtime reads itself, before the component reads its own.
        let key_prefix = reader.string("keyPrefix");
        let actor_state_store = reader.bool_or("actorStateStore", false);
        let keys = match KeyPrefix::parse(key_prefix.as_deref()) {
            Ok(prefix) => prefix.scheme(&info.app_id, &component.name, info.namespace.as_deref()),
            Err(err) => {
                reader.error(format!("metadata field 'keyPrefix': {err}"));
                KeyScheme::raw()
            }
        };
        let ctx = ComponentContext {
            name: component.name.clone(),
            app_id: info.app_id.clone(),
            namespace: info.namespace.clone(),
            data_dir: info.data_dir.clone(),
        };
        let builder = factory.configure(&component.version, &reader, &ctx);
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
            plan.state.push(PlannedState {
                component: component.clone(),
                builder,
                keys,
                actor_state_store,
            });
        }
    }
    let actor_stores: Vec<&PlannedState> =
        plan.state.iter().filter(|s| s.actor_state_store).collect();
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

/// Resolves each metadata value: literal values as they are, `envRef`s from
/// the environment; `secretKeyRef`s need a secret store. Returns the names
/// that could not be resolved, each with its problem.
fn resolve_properties(component: &Component) -> (Properties, Vec<(String, String)>) {
    let mut properties = Properties::new();
    let mut problems = Vec::new();
    for item in &component.metadata {
        match &item.source {
            MetadataSource::Value(value) => properties.0.push((item.name.clone(), value.clone())),
            MetadataSource::EnvRef(variable) => match std::env::var(variable) {
                Ok(value) => properties.0.push((item.name.clone(), value)),
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

impl Plan {
    /// How many components will be built.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// Builds every component concurrently, each within its `initTimeout`.
    /// A failure is fatal unless the component sets `ignoreErrors`.
    pub async fn build(self) -> Result<ComponentStore, Vec<String>> {
        let builds = self.state.into_iter().map(|planned| async move {
            let timeout = planned.component.init_timeout;
            let outcome = tokio::time::timeout(timeout, planned.builder.build()).await;
            let result = match outcome {
                Ok(Ok(store)) => Ok(store),
                Ok(Err(err)) => Err(format!("{err:#}")),
                Err(_) => Err(format!("initialisation timed out after {}", human(timeout))),
            };
            (
                planned.component,
                planned.keys,
                planned.actor_state_store,
                result,
            )
        });
        let mut store = ComponentStore::default();
        let mut errors = Vec::new();
        for (component, keys, actor_state_store, result) in futures::future::join_all(builds).await
        {
            match result {
                Ok(live) => {
                    tracing::info!(name = %component.name, kind = %component.type_name, "component loaded");
                    let entry = StateEntry {
                        store: Store::new(component.name.clone(), live, keys),
                        actor_state_store,
                    };
                    store.add_state(&component, entry);
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
