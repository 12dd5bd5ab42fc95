//! The `Configuration` resource given by `--config`. Only what the runtime
//! uses so far is typed; the other `spec` sections are accepted as they are.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::report::Report;

/// A feature flag of `spec.features`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FeatureFlag {
    pub name: String,
    #[serde(default)]
    pub enabled: bool,
}

/// `spec.nameResolution`: which `nameresolution.*` component finds other
/// runtimes, and its settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameResolutionSpec {
    /// Such as `sqlite`, `mdns` or `kubernetes`.
    pub component: String,
    pub version: String,
    /// `configuration`, flattened to name/value text (nested values as
    /// JSON).
    pub configuration: Vec<(String, String)>,
}

/// One entry of `spec.secrets.scopes`: which secrets of a store the app
/// may read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SecretScopeSpec {
    pub store_name: String,
    /// `allow` (the default) or `deny`, in any case.
    pub default_access: String,
    pub allowed_secrets: Vec<String>,
    pub denied_secrets: Vec<String>,
}

impl SecretScopeSpec {
    /// `defaultAccess: deny`.
    pub fn denies_by_default(&self) -> bool {
        self.default_access.eq_ignore_ascii_case("deny")
    }
}

/// A `Configuration` resource (`dapr.io/v1alpha1`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Configuration {
    pub name: String,
    pub features: Vec<FeatureFlag>,
    pub name_resolution: Option<NameResolutionSpec>,
    /// `spec.secrets.scopes`, one per store.
    pub secret_scopes: Vec<SecretScopeSpec>,
    pub files: Vec<PathBuf>,
}

impl Configuration {
    /// The names of the enabled feature flags.
    pub fn enabled_features(&self) -> Vec<String> {
        self.features
            .iter()
            .filter(|f| f.enabled)
            .map(|f| f.name.clone())
            .collect()
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Doc {
    api_version: String,
    kind: String,
    metadata: Meta,
    spec: Spec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Meta {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Spec {
    features: Vec<FeatureFlag>,
    name_resolution: Option<NameResolutionDoc>,
    secrets: Option<SecretsDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SecretsDoc {
    scopes: Vec<SecretScopeSpec>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NameResolutionDoc {
    component: String,
    version: String,
    configuration: serde_json::Map<String, serde_json::Value>,
}

/// Reads the `--config` files (later files add to earlier ones), expanding
/// `${VAR}` from the environment as daprd does.
pub fn load_configuration(files: &[PathBuf]) -> (Configuration, Report) {
    let mut config = Configuration::default();
    let mut report = Report::default();
    for file in files {
        match std::fs::read_to_string(file) {
            Ok(text) => read_one(file, &expand_env(&text), &mut config, &mut report),
            Err(err) => report.error(file, None, format!("cannot read configuration file: {err}")),
        }
    }
    (config, report)
}

fn read_one(file: &Path, text: &str, config: &mut Configuration, report: &mut Report) {
    let doc: Doc = match serde_saphyr::from_str(text) {
        Ok(doc) => doc,
        Err(err) => {
            let first = err
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            report.error(file, None, format!("invalid YAML: {first}"));
            return;
        }
    };
    if doc.kind != "Configuration" || !doc.api_version.starts_with("dapr.io/") {
        report.error(
            file,
            None,
            format!(
                "expected a dapr.io Configuration, found kind '{}' apiVersion '{}'",
                doc.kind, doc.api_version
            ),
        );
        return;
    }
    if config.name.is_empty() {
        config.name = doc.metadata.name;
    }
    if let Some(nr) = doc.spec.name_resolution {
        let configuration = nr
            .configuration
            .into_iter()
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text,
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (key, text)
            })
            .collect();
        config.name_resolution = Some(NameResolutionSpec {
            component: nr.component,
            version: nr.version,
            configuration,
        });
    }
    for scope in doc.spec.secrets.map(|s| s.scopes).unwrap_or_default() {
        let access = scope.default_access.to_ascii_lowercase();
        if !matches!(access.as_str(), "" | "allow" | "deny") {
            report.error(
                file,
                None,
                format!(
                    "secrets scope of '{}': defaultAccess {} can be either allow or deny",
                    scope.store_name, scope.default_access
                ),
            );
            continue;
        }
        if config
            .secret_scopes
            .iter()
            .any(|s| s.store_name == scope.store_name)
        {
            report.error(
                file,
                None,
                format!(
                    "{} storeName is repeated in secrets configuration",
                    scope.store_name
                ),
            );
            continue;
        }
        config.secret_scopes.push(scope);
    }
    for flag in doc.spec.features {
        config.features.retain(|f| f.name != flag.name);
        config.features.push(flag);
    }
    config.files.push(file.to_owned());
}

/// Replaces `${NAME}` with the environment variable's value (empty if unset).
fn expand_env(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find('}') {
            Some(end) => {
                let name = &rest[start + 2..start + 2 + end];
                out.push_str(&std::env::var(name).unwrap_or_default());
                rest = &rest[start + 3 + end..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_and_env_expansion() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        let text = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: appconfig\nspec:\n  tracing:\n    samplingRate: \"${MECHA_TEST_NO_SUCH_VAR}1\"\n  nameResolution:\n    component: sqlite\n    configuration:\n      connectionString: /tmp/nr.db\n      updateInterval: 2s\n  features:\n  - name: HotReload\n    enabled: true\n  - name: ActorStateTTL\n    enabled: false\n";
        std::fs::write(&file, text).unwrap();
        let (config, report) = load_configuration(&[file]);
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(config.name, "appconfig");
        assert_eq!(config.enabled_features(), vec!["HotReload".to_owned()]);
        let nr = config.name_resolution.expect("nameResolution is read");
        assert_eq!(nr.component, "sqlite");
        assert!(
            nr.configuration
                .contains(&("updateInterval".to_owned(), "2s".to_owned()))
        );
        assert_eq!(expand_env("a${MECHA_TEST_NO_SUCH_VAR}b${"), "ab${");
    }

    #[test]
    fn wrong_kind_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "apiVersion: dapr.io/v1alpha1\nkind: Component\n").unwrap();
        let (_, report) = load_configuration(&[file, dir.path().join("missing.yaml")]);
        assert_eq!(report.errors.len(), 2, "{report:?}");
    }
}
