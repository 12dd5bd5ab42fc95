//! Reading resource files: every `*.yaml`/`*.yml` in each resources path,
//! documents split on `---` lines, each matched on `apiVersion` and `kind`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mecha_core::units::parse_go_duration;
use serde::Deserialize;

use crate::report::Report;
use crate::resources::*;

/// Who is loading: resources scoped to other apps or namespaced elsewhere are
/// not loaded.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The app loading them; `None` loads resources whatever their scopes
    /// (`mecha validate` without `--app-id`).
    pub app_id: Option<String>,
    /// The runtime's namespace (`NAMESPACE`), if any.
    pub namespace: Option<String>,
}

/// The default `spec.initTimeout` of a component.
const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ObjectMeta {
    name: String,
    namespace: Option<String>,
}

/// What every document is first read as.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Header {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComponentDoc {
    #[serde(default)]
    metadata: ObjectMeta,
    spec: ComponentSpec,
    #[serde(default)]
    auth: Option<Auth>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComponentSpec {
    #[serde(rename = "type", default)]
    type_name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    init_timeout: Option<String>,
    #[serde(default)]
    ignore_errors: Option<String>,
    #[serde(default)]
    metadata: Option<Vec<MetadataDoc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Auth {
    #[serde(default)]
    secret_store: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataDoc {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    secret_key_ref: Option<SecretKeyRefDoc>,
    #[serde(default)]
    env_ref: Option<String>,
}

#[derive(Deserialize)]
struct SecretKeyRefDoc {
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionDoc {
    #[serde(default)]
    metadata: ObjectMeta,
    spec: SubscriptionSpecDoc,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SubscriptionSpecDoc {
    #[serde(alias = "pubsubName")]
    pubsubname: String,
    topic: String,
    route: String,
    routes: Option<RoutesDoc>,
    metadata: Option<std::collections::BTreeMap<String, String>>,
    dead_letter_topic: String,
    bulk_subscribe: Option<BulkSubscribeDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RoutesDoc {
    rules: Vec<RuleDoc>,
    default: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RuleDoc {
    #[serde(rename = "match")]
    matches: String,
    path: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct BulkSubscribeDoc {
    enabled: Option<String>,
    max_messages_count: Option<String>,
    max_await_duration_ms: Option<String>,
}

/// Loads every resource under `paths` (folders of YAML files, or files).
pub fn load_resources(paths: &[PathBuf], options: &LoadOptions) -> (Resources, Report) {
    let mut resources = Resources::default();
    let mut report = Report::default();
    for path in paths {
        for file in yaml_files(path, &mut report) {
            match std::fs::read_to_string(&file) {
                Ok(text) => parse_documents(&file, &text, options, &mut resources, &mut report),
                Err(err) => report.error(&file, None, format!("cannot read file: {err}")),
            }
        }
    }
    check_duplicates(&resources, &mut report);
    (resources, report)
}

fn yaml_files(path: &Path, report: &mut Report) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(err) => {
            report.error(path, None, format!("cannot read resources path: {err}"));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|ext| ext.to_str())
                .is_some_and(|ext| {
                    ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml")
                })
        })
        .collect();
    files.sort();
    files
}

/// Splits a file into documents on `---` lines, returning each document with
/// the line it starts on (1-based).
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut documents = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (index, line) in text.lines().enumerate() {
        let marker = line.trim_end();
        if marker == "---" || marker.starts_with("--- ") || marker == "..." {
            documents.push((start, std::mem::take(&mut current)));
            start = index + 2;
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents.push((start, current));
    documents
        .into_iter()
        .filter(|(_, doc)| {
            doc.lines()
                .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        })
        .collect()
}

/// Parses one file's documents into `resources`, recording problems.
pub fn parse_documents(
    file: &Path,
    text: &str,
    options: &LoadOptions,
    resources: &mut Resources,
    report: &mut Report,
) {
    for (line, doc) in split_documents(text) {
        let header: Header = match serde_saphyr::from_str(&doc) {
            Ok(header) => header,
            Err(err) => {
                report.error(file, None, yaml_error(line, &err.to_string()));
                continue;
            }
        };
        let label = if header.kind.is_empty() {
            format!("document at line {line}")
        } else {
            format!(
                "{} '{}'",
                header.kind.to_ascii_lowercase(),
                header.metadata.name
            )
        };
        if !header.api_version.starts_with("dapr.io/") {
            report.warning(
                file,
                Some(label),
                format!(
                    "not a Dapr resource (apiVersion '{}'); skipped",
                    header.api_version
                ),
            );
            continue;
        }
        let skip = |reason: String, resources: &mut Resources| {
            resources.skipped.push(SkippedResource {
                file: file.to_owned(),
                kind: header.kind.clone(),
                name: header.metadata.name.clone(),
                reason,
            });
        };
        if let (Some(ours), Some(theirs)) = (&options.namespace, &header.metadata.namespace)
            && !ours.is_empty()
            && !theirs.is_empty()
            && ours != theirs
        {
            skip(format!("in namespace '{theirs}', not '{ours}'"), resources);
            continue;
        }
        if let Some(app_id) = &options.app_id
            && !header.scopes.is_empty()
            && !header.scopes.iter().any(|s| s == app_id)
        {
            skip(format!("scoped to {:?}", header.scopes), resources);
            continue;
        }
        match header.kind.as_str() {
            "Component" => {
                if header.api_version != "dapr.io/v1alpha1" {
                    report.error(
                        file,
                        Some(label),
                        format!(
                            "unsupported apiVersion '{}' for Component (expected dapr.io/v1alpha1)",
                            header.api_version
                        ),
                    );
                    continue;
                }
                match serde_saphyr::from_str::<ComponentDoc>(&doc) {
                    Ok(parsed) => {
                        if let Some(component) = component(file, parsed, &label, report) {
                            resources.components.push(component);
                        }
                    }
                    Err(err) => report.error(file, Some(label), yaml_error(line, &err.to_string())),
                }
            }
            "Subscription" => {
                if !matches!(
                    header.api_version.as_str(),
                    "dapr.io/v1alpha1" | "dapr.io/v2alpha1"
                ) {
                    report.error(
                        file,
                        Some(label),
                        format!(
                            "unsupported apiVersion '{}' for Subscription (expected dapr.io/v2alpha1 or dapr.io/v1alpha1)",
                            header.api_version
                        ),
                    );
                    continue;
                }
                match serde_saphyr::from_str::<SubscriptionDoc>(&doc) {
                    Ok(parsed) => {
                        if let Some(subscription) = subscription(file, parsed, &label, report) {
                            resources.subscriptions.push(subscription);
                        }
                    }
                    Err(err) => report.error(file, Some(label), yaml_error(line, &err.to_string())),
                }
            }
            "Resiliency" | "HTTPEndpoint" | "MCPServer" | "WorkflowAccessPolicy" => {
                skip(
                    format!("{} resources are not supported yet", header.kind),
                    resources,
                );
            }
            "Configuration" => skip(
                "Configuration is read from --config, not from resources paths".into(),
                resources,
            ),
            "" => report.error(file, Some(label), "the document has no 'kind'"),
            other => report.warning(
                file,
                Some(label),
                format!("unknown kind '{other}'; skipped"),
            ),
        }
    }
}

/// Locates a YAML error within the file, not just within its document.
fn yaml_error(doc_line: usize, message: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    // serde-saphyr reports "error: line L column C: ..." relative to the document.
    let relocated = first.strip_prefix("error: line ").and_then(|rest| {
        let (number, tail) = rest.split_once(' ')?;
        let line: usize = number.parse().ok()?;
        Some(format!(
            "invalid YAML at line {} {tail}",
            line + doc_line - 1
        ))
    });
    relocated.unwrap_or_else(|| format!("invalid YAML: {first}"))
}

fn component(
    file: &Path,
    doc: ComponentDoc,
    label: &str,
    report: &mut Report,
) -> Option<Component> {
    let errors_before = report.errors.len();
    let mut error = |message: String| report.error(file, Some(label.to_owned()), message);
    if doc.metadata.name.is_empty() {
        error("metadata.name is required".into());
    }
    let spec = doc.spec;
    if spec.type_name.is_empty() {
        error("spec.type is required".into());
    } else if !spec.type_name.contains('.') {
        error(format!(
            "spec.type '{}' is not of the form <block>.<name>",
            spec.type_name
        ));
    }
    let init_timeout = match spec.init_timeout.as_deref().filter(|t| !t.is_empty()) {
        None => DEFAULT_INIT_TIMEOUT,
        Some(text) => match parse_go_duration(text) {
            Ok(duration) if !duration.is_zero() => duration,
            Ok(_) => DEFAULT_INIT_TIMEOUT,
            Err(err) => {
                error(format!("spec.initTimeout: {err}"));
                DEFAULT_INIT_TIMEOUT
            }
        },
    };
    let ignore_errors = match spec.ignore_errors.as_deref().filter(|t| !t.is_empty()) {
        None => false,
        Some(text) => match mecha_core::metadata::parse_bool(text) {
            Some(value) => value,
            None => {
                error(format!("spec.ignoreErrors: '{text}' is not a boolean"));
                false
            }
        },
    };
    let mut metadata = Vec::new();
    for (index, item) in spec.metadata.unwrap_or_default().into_iter().enumerate() {
        if item.name.is_empty() {
            error(format!("spec.metadata[{index}] has no name"));
            continue;
        }
        let sources = usize::from(item.value.is_some())
            + usize::from(item.secret_key_ref.is_some())
            + usize::from(item.env_ref.is_some());
        if sources > 1 {
            error(format!(
                "metadata '{}' sets more than one of value, secretKeyRef and envRef",
                item.name
            ));
            continue;
        }
        let source = if let Some(reference) = item.secret_key_ref {
            if reference.name.is_empty() {
                error(format!(
                    "metadata '{}': secretKeyRef.name is required",
                    item.name
                ));
                continue;
            }
            let key = reference
                .key
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| reference.name.clone());
            MetadataSource::SecretKeyRef {
                name: reference.name,
                key,
            }
        } else if let Some(variable) = item.env_ref {
            MetadataSource::EnvRef(variable)
        } else {
            MetadataSource::Value(item.value.unwrap_or_default())
        };
        metadata.push(MetadataItem {
            name: item.name,
            source,
        });
    }
    if report.errors.len() > errors_before {
        return None;
    }
    Some(Component {
        name: doc.metadata.name,
        namespace: doc.metadata.namespace,
        type_name: spec.type_name,
        version: if spec.version.is_empty() {
            "v1".into()
        } else {
            spec.version
        },
        init_timeout,
        ignore_errors,
        metadata,
        secret_store: doc
            .auth
            .and_then(|auth| auth.secret_store)
            .filter(|s| !s.is_empty()),
        scopes: doc.scopes,
        file: file.to_owned(),
    })
}

fn subscription(
    file: &Path,
    doc: SubscriptionDoc,
    label: &str,
    report: &mut Report,
) -> Option<Subscription> {
    let errors_before = report.errors.len();
    let mut error = |message: String| report.error(file, Some(label.to_owned()), message);
    let spec = doc.spec;
    if spec.pubsubname.is_empty() {
        error("spec.pubsubname is required".into());
    }
    if spec.topic.is_empty() {
        error("spec.topic is required".into());
    }
    let routes = spec.routes.unwrap_or_default();
    let rules: Vec<RouteRule> = routes
        .rules
        .into_iter()
        .map(|rule| RouteRule {
            matches: rule.matches,
            path: rule.path,
        })
        .collect();
    for (index, rule) in rules.iter().enumerate() {
        if rule.path.is_empty() {
            error(format!("spec.routes.rules[{index}] has no path"));
        }
    }
    if rules.is_empty() && routes.default.is_empty() && spec.route.is_empty() {
        error(
            "the subscription has no route: set spec.routes (v2alpha1) or spec.route (v1alpha1)"
                .into(),
        );
    }
    let mut number = |field: &str, value: Option<String>| -> i64 {
        match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => 0,
            Some(text) => text.parse().unwrap_or_else(|_| {
                error(format!(
                    "spec.bulkSubscribe.{field}: '{text}' is not a number"
                ));
                0
            }),
        }
    };
    let bulk_subscribe = spec.bulk_subscribe.map(|bulk| BulkSubscribe {
        enabled: bulk
            .enabled
            .as_deref()
            .and_then(mecha_core::metadata::parse_bool)
            .unwrap_or(false),
        max_messages_count: number("maxMessagesCount", bulk.max_messages_count),
        max_await_duration_ms: number("maxAwaitDurationMs", bulk.max_await_duration_ms),
    });
    if report.errors.len() > errors_before {
        return None;
    }
    Some(Subscription {
        name: doc.metadata.name,
        pubsub_name: spec.pubsubname,
        topic: spec.topic,
        rules,
        default_route: routes.default,
        route: spec.route,
        metadata: spec.metadata.unwrap_or_default(),
        dead_letter_topic: Some(spec.dead_letter_topic).filter(|t| !t.is_empty()),
        bulk_subscribe,
        scopes: doc.scopes,
        file: file.to_owned(),
    })
}

fn check_duplicates(resources: &Resources, report: &mut Report) {
    let mut seen: HashMap<&str, &Component> = HashMap::new();
    for component in &resources.components {
        if let Some(first) = seen.insert(&component.name, component) {
            report.error(
                &component.file,
                Some(component.label()),
                format!(
                    "a component with this name is already defined in {}",
                    first.file.display()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
