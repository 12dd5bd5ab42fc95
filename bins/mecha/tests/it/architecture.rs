//! The layering rules of docs/ARCHITECTURE.md, checked on `cargo metadata`
//! and on the sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The libraries every block builds on, held to the blocks' rules.
const LIBRARIES: [&str; 4] = [
    "mecha-core",
    "mecha-resources",
    "mecha-invoke",
    "mecha-actors",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crates under `crates/` whose sources implement `Block`, and the
/// libraries: read from the code, so a new block is held to the rules
/// without a list to keep.
fn block_crates() -> BTreeSet<String> {
    let mut blocks: BTreeSet<String> = LIBRARIES.iter().map(|l| (*l).to_owned()).collect();
    for dir in std::fs::read_dir(root().join("crates")).unwrap().flatten() {
        let mut files = Vec::new();
        rust_files(&dir.path().join("src"), &mut files);
        let implements = files.iter().any(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            text.contains("impl Block for") || text.contains("impl mecha_core::Block for")
        });
        if implements {
            blocks.insert(dir.file_name().to_string_lossy().into_owned());
        }
    }
    blocks
}

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
    let blocks = block_crates();
    let mut checked = 0;
    for (name, deps) in &packages {
        let forbidden: &[&str] = if blocks.contains(name) {
            &forbidden_for_blocks
        } else if name.starts_with("mecha-component-") {
            &forbidden_for_components
        } else if name == "mecha-api-http" || name == "mecha-api-grpc" {
            // The adapters translate wire types for mecha-api: among the
            // workspace's crates they know it, mecha-core and the protos.
            let workspace: BTreeSet<&String> = packages.keys().collect();
            for dep in deps {
                assert!(
                    !workspace.contains(dep)
                        || ["mecha-api", "mecha-core", "mecha-proto"].contains(&dep.as_str()),
                    "{name} must not depend on {dep}"
                );
            }
            checked += 1;
            continue;
        } else if name == "mecha-peers" {
            &["axum", "mecha-api-http", "mecha-api-grpc", "mecha-channel"]
        } else if name == "mecha-runtime" {
            // Each block brings its own services to the host: the runtime
            // knows none of them.
            let rules: Vec<&str> = blocks
                .iter()
                .filter(|b| !LIBRARIES.contains(&b.as_str()))
                .map(String::as_str)
                .chain(
                    forbidden_for_blocks
                        .iter()
                        .copied()
                        .filter(|d| *d != "mecha-runtime"),
                )
                .collect();
            for dep in deps {
                assert!(
                    !rules.contains(&dep.as_str()),
                    "{name} must not depend on {dep}"
                );
            }
            checked += 1;
            continue;
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
        checked > blocks.len(),
        "the rules found the crates they are about: {packages:?}"
    );
    // Only the registry and the binaries name concrete components.
    for (name, deps) in &packages {
        let names_components = deps.iter().any(|d| d.starts_with("mecha-component-"));
        if names_components {
            assert!(
                name == "mecha-catalog" || name == "mecha" || name.starts_with("mecha-bench"),
                "{name} names a concrete component"
            );
        }
    }
}

#[test]
fn every_block_components_register_under_is_found_in_the_code() {
    let blocks = block_crates();
    assert!(blocks.len() > LIBRARIES.len(), "no block found: {blocks:?}");
    let mut used = BTreeSet::new();
    for dir in std::fs::read_dir(root().join("components"))
        .unwrap()
        .flatten()
    {
        let mut files = Vec::new();
        rust_files(&dir.path().join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (at, pattern) in text.match_indices("register::<") {
                let rest = &text[at + pattern.len()..];
                if let Some((krate, _)) = rest.split_once("::") {
                    used.insert(krate.replace('_', "-"));
                }
            }
        }
    }
    assert!(!used.is_empty(), "no registration found in components/");
    for krate in &used {
        assert!(
            blocks.contains(krate),
            "components register under {krate}, which implements no Block: {blocks:?}"
        );
    }
}
