//! The layering rules of docs/ARCHITECTURE.md, checked on `cargo metadata`.

use std::collections::BTreeMap;

fn workspace_dependencies() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let name = package["name"].as_str().unwrap().to_owned();
            let deps = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|dep| dep["kind"].is_null())
                .map(|dep| dep["name"].as_str().unwrap().to_owned())
                .collect();
            (name, deps)
        })
        .collect()
}

#[test]
fn layers_depend_downwards_only() {
    let packages = workspace_dependencies();
    let forbidden_for_blocks = [
        "axum",
        "tonic",
        "hyper",
        "rusqlite",
        "sqlx",
        "redis",
        "lapin",
        "async-nats",
        "mecha-runtime",
        "mecha-api",
        "mecha-channel",
    ];
    let forbidden_for_components = [
        "mecha-runtime",
        "mecha-api",
        "mecha-api-http",
        "mecha-api-grpc",
        "axum",
        "tonic",
    ];
    let mut checked = 0;
    for (name, deps) in &packages {
        let blocks = [
            "mecha-state",
            "mecha-core",
            "mecha-config",
            "mecha-invoke",
            "mecha-nameresolution",
            "mecha-pubsub",
            "mecha-lock",
            "mecha-secrets",
            "mecha-configuration",
            "mecha-bindings",
        ];
        let forbidden: &[&str] = if blocks.contains(&name.as_str()) {
            &forbidden_for_blocks
        } else if name.starts_with("mecha-component-") {
            &forbidden_for_components
        } else if name == "mecha-api" {
            &[
                "axum",
                "tonic",
                "hyper",
                "mecha-api-http",
                "mecha-api-grpc",
                "mecha-channel",
                "mecha-component-memory",
                "mecha-component-sqlite",
            ]
        } else {
            continue;
        };
        checked += 1;
        for dep in deps {
            assert!(
                !forbidden.contains(&dep.as_str()),
                "{name} must not depend on {dep}"
            );
        }
    }
    assert!(
        checked >= 8,
        "the rules found the crates they are about: {packages:?}"
    );
    // Only the registry and the binaries name concrete components.
    for (name, deps) in &packages {
        let names_components = deps.iter().any(|d| d.starts_with("mecha-component-"));
        if names_components {
            assert!(
                name == "mecha-registry" || name == "mecha" || name.starts_with("mecha-bench"),
                "{name} names a concrete component"
            );
        }
    }
}
