//! The local secret stores against the secret store conformance suite, plus
//! what is particular to each: the file's flattening and the environment's
//! prefix and forbidden variables.

use std::sync::Arc;

use async_trait::async_trait;
use mecha_component_local::{EnvSecretStore, FileSecretStore, FileSecretsConfig};
use mecha_core::{MetadataReader, Properties};
use mecha_secrets::conformance::Harness;
use mecha_secrets::*;
use serde_json::{Map, Value, json};

async fn file_store(document: Value, multi_valued: bool) -> FileSecretStore {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("secrets.json");
    std::fs::write(&path, document.to_string()).unwrap();
    FileSecretStore::open(FileSecretsConfig {
        secrets_file: path,
        nested_separator: ":".into(),
        multi_valued,
    })
    .await
    .unwrap()
}

#[derive(Default)]
struct File;

#[async_trait]
impl Harness for File {
    async fn component(&self, secrets: &[(&str, &str)]) -> Option<Arc<dyn SecretStore>> {
        let document: Map<String, Value> = secrets
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        Some(Arc::new(file_store(Value::Object(document), false).await))
    }

    async fn multi_valued(
        &self,
        secrets: &[(&str, &[(&str, &str)])],
    ) -> Option<Arc<dyn SecretStore>> {
        let document: Map<String, Value> = secrets
            .iter()
            .map(|(name, values)| {
                let value = match values {
                    [(key, value)] if key == name => json!(value),
                    values => Value::Object(
                        values
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), json!(v)))
                            .collect(),
                    ),
                };
                ((*name).to_owned(), value)
            })
            .collect();
        Some(Arc::new(file_store(Value::Object(document), true).await))
    }
}

mod file {
    mecha_secrets::secrets_conformance!(super::File);
}

#[derive(Default)]
struct Env;

#[async_trait]
impl Harness for Env {
    async fn component(&self, secrets: &[(&str, &str)]) -> Option<Arc<dyn SecretStore>> {
        // The store's prefix, beside a variable without it that it must not
        // list.
        let mut environment: Vec<(String, String)> = secrets
            .iter()
            .map(|(k, v)| (format!("MECHA_T_{k}"), (*v).to_owned()))
            .collect();
        environment.push(("PATH".into(), "/usr/bin".into()));
        Some(Arc::new(EnvSecretStore::new(
            "MECHA_T_".into(),
            environment,
        )))
    }
}

mod env {
    mecha_secrets::secrets_conformance!(super::Env);
}

#[tokio::test]
async fn nested_files_flatten_as_daprd() {
    let document = json!({
        "connectionStrings": {"sql": "Server=db", "mysql": {"username": "u", "port": 3306}},
        "list": ["a", "b"],
        "flag": true,
        "none": null,
    });
    let flat = file_store(document.clone(), false).await;
    async fn get(store: &FileSecretStore, name: &str) -> Result<Secret, SecretError> {
        store.get(name, &Metadata::new()).await
    }
    assert_eq!(
        get(&flat, "connectionStrings:mysql:username")
            .await
            .unwrap(),
        [(
            "connectionStrings:mysql:username".to_owned(),
            "u".to_owned()
        )]
        .into()
    );
    assert_eq!(
        get(&flat, "connectionStrings:mysql:port").await.unwrap()["connectionStrings:mysql:port"],
        "3306"
    );
    assert_eq!(get(&flat, "list:1").await.unwrap()["list:1"], "b");
    assert_eq!(get(&flat, "flag").await.unwrap()["flag"], "true");
    assert_eq!(get(&flat, "none").await.unwrap()["none"], "");
    assert!(matches!(
        get(&flat, "connectionStrings").await,
        Err(SecretError::NotFound(_))
    ));
    let multi = file_store(document, true).await;
    let strings = get(&multi, "connectionStrings").await.unwrap();
    assert_eq!(strings["sql"], "Server=db");
    assert_eq!(strings["mysql:username"], "u");
    assert_eq!(get(&multi, "flag").await.unwrap()["flag"], "true");
    assert_eq!(get(&multi, "list").await.unwrap()["1"], "b");
}

#[tokio::test]
async fn a_separator_of_its_own_and_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    std::fs::write(&path, r#"{"a":{"b":"c"}}"#).unwrap();
    let props = Properties::new()
        .with("secretsFile", &path.to_string_lossy())
        .with("nestedSeparator", ".")
        .with("multiValued", "false");
    let reader = MetadataReader::new(&props);
    let config = FileSecretsConfig::from_metadata(&reader);
    assert!(reader.errors().is_empty() && reader.unread().is_empty());
    let store = FileSecretStore::open(config.clone()).await.unwrap();
    assert_eq!(
        store.get("a.b", &Metadata::new()).await.unwrap()["a.b"],
        "c"
    );
    std::fs::write(&path, "[1, 2]").unwrap();
    let err = FileSecretStore::open(config.clone()).await.err().unwrap();
    assert!(err.to_string().contains("JSON object"), "{err}");
    std::fs::write(&path, "not json").unwrap();
    assert!(FileSecretStore::open(config).await.is_err());
    let empty = Properties::new();
    let reader = MetadataReader::new(&empty);
    FileSecretsConfig::from_metadata(&reader);
    assert!(reader.errors().iter().any(|e| e.contains("secretsFile")));
}

#[tokio::test]
async fn the_runtime_variables_are_never_secrets() {
    let store = EnvSecretStore::new(
        String::new(),
        [
            ("DAPR_API_TOKEN", "t"),
            ("dapr_http_port", "1"),
            ("APP_API_TOKEN", "t"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    for name in ["DAPR_API_TOKEN", "dapr_http_port", "APP_API_TOKEN"] {
        assert!(store.get(name, &Metadata::new()).await.is_err(), "{name}");
    }
    let all = store.bulk(&Metadata::new()).await.unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["HOME"]);
}
