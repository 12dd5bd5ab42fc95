//! Run files (`mecha run -f apps.yaml`), in the shape of Dapr's multi-app
//! run file: `version`, `common` and `apps`. Paths in `common` and each
//! `appDirPath` are relative to the file; the other paths of an app are
//! relative to its `appDirPath`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::AppSpec;

/// Keys allowed both in `common` and in each app.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Shared {
    resources_path: Option<String>,
    resources_paths: Vec<String>,
    config_file_path: Option<String>,
    app_protocol: Option<String>,
    env: BTreeMap<String, String>,
    log_level: Option<String>,
    app_max_concurrency: Option<i64>,
    enable_app_health_check: Option<bool>,
    app_health_check_path: Option<String>,
    app_health_probe_interval: Option<u64>,
    app_health_probe_timeout: Option<u64>,
    app_health_threshold: Option<u32>,
    max_body_size: Option<String>,
    placement_host_address: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct App {
    #[serde(rename = "appID", default)]
    app_id: Option<String>,
    app_dir_path: String,
    #[serde(default)]
    app_port: Option<u16>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(rename = "daprHTTPPort", default)]
    dapr_http_port: Option<u16>,
    #[serde(rename = "daprGRPCPort", default)]
    dapr_grpc_port: Option<u16>,
    #[serde(default)]
    metrics_port: Option<u16>,
    #[serde(rename = "daprInternalGRPCPort", default)]
    dapr_internal_grpc_port: Option<u16>,
    #[serde(default)]
    app_channel_address: Option<String>,
    #[serde(flatten)]
    shared: Shared,
}

#[derive(Deserialize, Debug)]
struct RunFile {
    version: u32,
    #[serde(default)]
    common: Shared,
    #[serde(default)]
    apps: Vec<App>,
}

/// `~` and relative paths, relative to `base`.
fn resolve(base: &Path, path: &str) -> PathBuf {
    let expanded = match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(rest),
        None => PathBuf::from(path),
    };
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
}

fn paths(base: &Path, shared: &Shared) -> Vec<PathBuf> {
    shared
        .resources_paths
        .iter()
        .chain(shared.resources_path.iter())
        .map(|p| resolve(base, p))
        .collect()
}

/// Reads a run file into one spec per app.
pub fn load(file: &Path) -> anyhow::Result<Vec<AppSpec>> {
    let text = std::fs::read_to_string(file)
        .map_err(|err| anyhow::anyhow!("cannot read the run file {}: {err}", file.display()))?;
    let parsed: RunFile = serde_saphyr::from_str(&text).map_err(|err| {
        let first = err
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        anyhow::anyhow!("{}: invalid run file: {first}", file.display())
    })?;
    anyhow::ensure!(
        parsed.version > 0,
        "{}: `version` is required",
        file.display()
    );
    anyhow::ensure!(!parsed.apps.is_empty(), "{}: no apps", file.display());
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    let common = parsed.common;
    let mut specs = Vec::new();
    for app in parsed.apps {
        let dir = resolve(&base, &app.app_dir_path);
        let app_id = app
            .app_id
            .clone()
            .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: an app has neither appID nor appDirPath",
                    file.display()
                )
            })?;
        let shared = &app.shared;
        // Resources: the app's own, else its .dapr/resources, else common.
        let mut resources = paths(&dir, shared);
        if resources.is_empty() && dir.join(".dapr/resources").is_dir() {
            resources.push(dir.join(".dapr/resources"));
        }
        if resources.is_empty() {
            resources = paths(&base, &common);
        }
        let config = shared
            .config_file_path
            .as_deref()
            .map(|p| resolve(&dir, p))
            .or_else(|| Some(dir.join(".dapr/config.yaml")).filter(|p| p.is_file()))
            .or_else(|| {
                common
                    .config_file_path
                    .as_deref()
                    .map(|p| resolve(&base, p))
            });
        let mut env: BTreeMap<String, String> = common.env.clone();
        env.extend(shared.env.clone());
        let pick =
            |own: &Option<String>, common: &Option<String>| own.clone().or_else(|| common.clone());
        let mut sidecar_args = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                sidecar_args.push(format!("--{name}"));
                sidecar_args.push(value);
            }
        };
        flag("log-level", pick(&shared.log_level, &common.log_level));
        flag(
            "app-max-concurrency",
            shared
                .app_max_concurrency
                .or(common.app_max_concurrency)
                .map(|n| n.to_string()),
        );
        flag(
            "app-health-check-path",
            pick(&shared.app_health_check_path, &common.app_health_check_path),
        );
        flag(
            "app-health-probe-interval",
            shared
                .app_health_probe_interval
                .or(common.app_health_probe_interval)
                .map(|n| n.to_string()),
        );
        flag(
            "app-health-probe-timeout",
            shared
                .app_health_probe_timeout
                .or(common.app_health_probe_timeout)
                .map(|n| n.to_string()),
        );
        flag(
            "app-health-threshold",
            shared
                .app_health_threshold
                .or(common.app_health_threshold)
                .map(|n| n.to_string()),
        );
        flag(
            "max-body-size",
            pick(&shared.max_body_size, &common.max_body_size),
        );
        flag(
            "placement-host-address",
            pick(
                &shared.placement_host_address,
                &common.placement_host_address,
            ),
        );
        flag(
            "dapr-internal-grpc-port",
            app.dapr_internal_grpc_port.map(|p| p.to_string()),
        );
        flag("app-channel-address", app.app_channel_address.clone());
        if shared
            .enable_app_health_check
            .or(common.enable_app_health_check)
            .unwrap_or(false)
        {
            sidecar_args.push("--enable-app-health-check".into());
        }
        specs.push(AppSpec {
            app_id,
            app_port: app.app_port,
            app_protocol: pick(&shared.app_protocol, &common.app_protocol),
            http_port: app.dapr_http_port,
            grpc_port: app.dapr_grpc_port,
            metrics_port: app.metrics_port,
            resources,
            config,
            env: env.into_iter().collect(),
            command: app.command,
            dir: Some(dir),
            sidecar_args,
        });
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dapr_style_run_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("shared")).unwrap();
        std::fs::create_dir_all(dir.path().join("checkout/.dapr/resources")).unwrap();
        let file = dir.path().join("apps.yaml");
        std::fs::write(
            &file,
            "version: 1\ncommon:\n  resourcesPath: ./shared\n  env:\n    DEBUG: \"true\"\n    LEVEL: common\napps:\n  - appID: orders\n    appDirPath: ./orders/\n    appPort: 3000\n    daprHTTPPort: 3510\n    command: [\"python3\", \"app.py\"]\n    env:\n      LEVEL: app\n    appProtocol: grpc\n    enableAppHealthCheck: true\n  - appDirPath: ./checkout\n    command: [\"node\", \"app.js\"]\n",
        )
        .unwrap();
        let specs = load(&file).unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(specs.len(), 2);
        let orders = &specs[0];
        assert_eq!(orders.app_id, "orders");
        assert_eq!(orders.app_port, Some(3000));
        assert_eq!(orders.http_port, Some(3510));
        assert_eq!(orders.app_protocol.as_deref(), Some("grpc"));
        assert_eq!(orders.resources, vec![base.join("./shared")]);
        assert!(orders.env.contains(&("LEVEL".into(), "app".into())));
        assert!(orders.env.contains(&("DEBUG".into(), "true".into())));
        assert!(
            orders
                .sidecar_args
                .contains(&"--enable-app-health-check".to_owned())
        );
        let checkout = &specs[1];
        assert_eq!(checkout.app_id, "checkout", "defaults to the folder's name");
        assert_eq!(
            checkout.resources,
            vec![base.join("./checkout").join(".dapr/resources")]
        );
        assert_eq!(
            checkout.dir.as_deref(),
            Some(base.join("./checkout").as_path())
        );

        std::fs::write(&file, "common: {}\napps: []\n").unwrap();
        assert!(load(&file).is_err());
    }
}
