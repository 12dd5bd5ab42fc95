//! Loading components in two phases: [`plan`] is pure (it validates every
//! resource against the registry and reports every problem at once, so
//! `mecha validate` can use it), and [`Plan::build`] connects.
//!
//! Every block is handled alike, through what its [`mecha_core::Block`]
//! implementation says: secret stores are built first, and a component
//! whose metadata uses a `secretKeyRef` is configured again once its
//! `auth.secretStore` is up and the references are resolved (at planning
//! time its other metadata is checked, with the references counted as
//! given).

use std::sync::Arc;
use std::time::Duration;

use mecha_core::block::{Configured, LiveComponent};
use mecha_core::{
    BlockInfo, ComponentSpec, ComponentStore, MetadataReader, Properties, Registry,
    RuntimeSettings, TypeEntry,
};
use mecha_resources::{Component, MetadataSource, Report};

use crate::runtime::RuntimeInfo;

/// A `secretKeyRef` of one metadata item.
#[derive(Clone, Debug)]
struct SecretRef {
    item: String,
    store: String,
    secret: String,
    key: String,
}

/// One validated component.
struct Planned {
    component: Component,
    entry: TypeEntry,
    block: BlockInfo,
    spec: ComponentSpec,
    /// Its metadata, as far as planning resolves it.
    properties: Properties,
    /// Its `secretKeyRef`s: when there are any, it is configured again
    /// once they are resolved.
    refs: Vec<SecretRef>,
    configured: Box<dyn Configured>,
}

/// Validated components, ready to be built.
#[derive(Default)]
pub struct Plan {
    components: Vec<Planned>,
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
/// `settings` are what blocks read from the `Configuration`.
pub fn plan(
    components: &[Component],
    registry: &Registry,
    info: &RuntimeInfo,
    settings: RuntimeSettings,
) -> (Plan, Report) {
    let settings = Arc::new(settings);
    let mut plan = Plan::default();
    let mut report = Report::default();
    let is_secret_store = |c: &Component| {
        registry
            .block(c.block())
            .is_some_and(|block| block.secret_stores)
    };
    let secret_stores: Vec<&str> = components
        .iter()
        .filter(|c| is_secret_store(c))
        .map(|c| c.name.as_str())
        .collect();
    for component in components {
        let label = Some(component.label());
        let mut fail = |message: String| report.error(&component.file, label.clone(), message);
        let entry = registry
            .get(&component.type_name)
            .filter(|entry| entry.block == component.block())
            .filter(|entry| entry.block_info().is_none_or(|b| b.from_resources));
        let Some(entry) = entry.cloned() else {
            fail(format!(
                "unknown component type '{}'; known types: {}",
                component.type_name,
                registry.known_types().join(", ")
            ));
            continue;
        };
        if !entry.versions().contains(&component.version.as_str()) {
            fail(format!(
                "unsupported version '{}' of {}; supported: {}",
                component.version,
                component.type_name,
                entry.versions().join(", ")
            ));
            continue;
        }
        let spec = ComponentSpec {
            ctx: info.component_context(&component.name),
            type_name: component.type_name.clone(),
            version: component.version.clone(),
            namespaced: component.metadata.iter().any(|item| {
                matches!(&item.source, MetadataSource::Value(v) if v.contains("{namespace}"))
            }),
            settings: settings.clone(),
        };
        let resolved = resolve_properties(component, info);
        let errors_before = report.errors.len();
        let mut properties = resolved.properties;
        for problem in &resolved.problems {
            report.error(&component.file, label.clone(), problem.clone());
        }
        let block = entry.block_info();
        for secret in &resolved.refs {
            if block.is_some_and(|b| b.secret_stores) {
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
        if let Some(block) = &block {
            block.defaults(&mut properties, &spec);
        }
        let unresolved = resolved
            .unresolved
            .iter()
            .cloned()
            .chain(resolved.refs.iter().map(|r| r.item.clone()));
        let reader = MetadataReader::new(&properties).with_unresolved(unresolved);
        let configured = entry.configure(&reader, &spec);
        report_reader(&mut report, component, &reader);
        if let (Some(block), true) = (block, report.errors.len() == errors_before) {
            plan.components.push(Planned {
                component: component.clone(),
                entry,
                block,
                spec,
                properties,
                refs: resolved.refs,
                configured,
            });
        }
    }
    check_exclusive_flags(&plan, &mut report);
    (plan, report)
}

/// At most one component of a block may set the block's exclusive flag
/// (`actorStateStore`).
fn check_exclusive_flags(plan: &Plan, report: &mut Report) {
    let mut first: std::collections::HashMap<&str, &Component> = Default::default();
    for planned in &plan.components {
        let Some(flag) = planned.block.exclusive_flag else {
            continue;
        };
        let set = planned
            .properties
            .get(flag)
            .and_then(mecha_core::metadata::parse_bool)
            .unwrap_or(false);
        if !set {
            continue;
        }
        match first.get(planned.block.kind) {
            Some(owner) => report.error(
                &planned.component.file,
                Some(planned.component.label()),
                format!(
                    "only one {} may set {flag}, and '{}' already does",
                    planned.block.noun, owner.name
                ),
            ),
            None => {
                first.insert(planned.block.kind, &planned.component);
            }
        }
    }
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

async fn within<T>(
    timeout: Duration,
    build: impl std::future::Future<Output = anyhow::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, build).await {
        Ok(Ok(live)) => Ok(live),
        Ok(Err(err)) => Err(format!("{err:#}")),
        Err(_) => Err(format!("initialisation timed out after {}", human(timeout))),
    }
}

/// Resolves a component's `secretKeyRef`s from the secret stores built so
/// far, and configures it with them.
async fn resolve_deferred(
    store: &ComponentStore,
    planned: Planned,
) -> Result<Box<dyn Configured>, String> {
    if planned.refs.is_empty() {
        return Ok(planned.configured);
    }
    let component = &planned.component;
    let mut properties = planned.properties.clone();
    for secret in &planned.refs {
        let source = store.secret_source(&secret.store).ok_or_else(|| {
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
            source.resolve(&secret.secret, &secret.key),
        )
        .await
        .map_err(|_| {
            problem(format!(
                "no answer within {}",
                human(component.init_timeout)
            ))
        })?
        .map_err(problem)?;
        properties.0.push((secret.item.clone(), value));
    }
    let reader = MetadataReader::new(&properties);
    let configured = planned.entry.configure(&reader, &planned.spec);
    let errors = reader.errors();
    if errors.is_empty() {
        Ok(configured)
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

    /// Builds the secret stores, then every other component concurrently
    /// (those with `secretKeyRef`s once resolved), each within its
    /// `initTimeout`. A failure is fatal unless the component sets
    /// `ignoreErrors`.
    pub async fn build(self) -> Result<ComponentStore, Vec<String>> {
        let (secret_stores, others): (Vec<Planned>, Vec<Planned>) = self
            .components
            .into_iter()
            .partition(|p| p.block.secret_stores);
        let mut store = ComponentStore::default();
        let mut errors = Vec::new();
        // Secret stores cannot use secretKeyRefs (planning refuses them).
        let ready = secret_stores
            .into_iter()
            .map(|planned| (planned.component, Ok(planned.configured)))
            .collect();
        build_all(ready, &mut store, &mut errors).await;
        let mut ready = Vec::new();
        for planned in others {
            let component = planned.component.clone();
            ready.push((component, resolve_deferred(&store, planned).await));
        }
        build_all(ready, &mut store, &mut errors).await;
        if errors.is_empty() {
            Ok(store)
        } else {
            Err(errors)
        }
    }
}

/// A configured component, or why it could not be configured.
type Configuring = Result<Box<dyn Configured>, String>;

/// Builds components concurrently, each within its `initTimeout`, and
/// installs those that load; a failure is recorded unless the component
/// sets `ignoreErrors`.
async fn build_all(
    components: Vec<(Component, Configuring)>,
    store: &mut ComponentStore,
    errors: &mut Vec<String>,
) {
    let built = futures::future::join_all(components.into_iter().map(
        |(component, configured)| async move {
            let live: Result<LiveComponent, String> = match configured {
                Ok(configured) => within(component.init_timeout, configured.build()).await,
                Err(err) => Err(err),
            };
            (component, live)
        },
    ))
    .await;
    for (component, live) in built {
        match live {
            Ok(live) => {
                tracing::info!(name = %component.name, kind = %component.type_name, "component loaded");
                store.install(
                    &component.name,
                    &component.type_name,
                    &component.version,
                    live,
                );
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
}

fn human(duration: Duration) -> String {
    format!("{:?}", duration)
}

#[cfg(test)]
mod tests;
