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

/// `bindings.cron` against the input binding suite, on a fast schedule.
mod cron {
    use std::sync::Arc;

    use async_trait::async_trait;
    use mecha_bindings::conformance::{InputCase, InputHarness};
    use mecha_component_local::{CronBinding, Schedule};

    #[derive(Default)]
    struct Cron;

    #[async_trait]
    impl InputHarness for Cron {
        async fn case(&self) -> Option<InputCase> {
            let schedule = Schedule::parse("@every 200ms").unwrap();
            Some(InputCase {
                binding: Arc::new(CronBinding::new(schedule)),
                trigger: None,
                redelivers: false,
            })
        }
    }

    mecha_bindings::input_binding_conformance!(Cron);
}

/// `bindings.localstorage` against the output binding suite, plus its
/// refusal of every way out of the root folder.
mod localstorage {
    use std::sync::Arc;

    use async_trait::async_trait;
    use mecha_bindings::conformance::OutputHarness;
    use mecha_bindings::*;
    use mecha_component_local::LocalStorage;

    #[derive(Default)]
    struct Files;

    #[async_trait]
    impl OutputHarness for Files {
        async fn component(&self) -> Option<Arc<dyn OutputBinding>> {
            let dir = tempfile::tempdir().unwrap().keep();
            Some(Arc::new(LocalStorage::open(&dir).await.unwrap()))
        }

        fn operations(&self) -> &'static [&'static str] {
            &["create", "get", "list", "delete"]
        }

        fn write_then_read(&self, data: &[u8]) -> Option<(InvokeRequest, InvokeRequest)> {
            let name = format!("sub/{}.json", mecha_core::testing::unique("file"));
            Some((
                InvokeRequest::new("create", data.to_vec()).with("fileName", &name),
                InvokeRequest::new("get", "").with("fileName", &name),
            ))
        }
    }

    mecha_bindings::output_binding_conformance!(Files);

    async fn storage() -> (tempfile::TempDir, LocalStorage) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let storage = LocalStorage::open(&root).await.unwrap();
        (dir, storage)
    }

    #[tokio::test]
    async fn create_list_get_delete() {
        let (dir, storage) = storage().await;
        let created = storage
            .invoke(&InvokeRequest::new("create", r#""hello""#).with("fileName", "a/b.txt"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(created.data, r#"{"fileName":"a/b.txt"}"#);
        let bytes = std::fs::read(dir.path().join("root/a/b.txt")).unwrap();
        assert_eq!(bytes, b"hello", "a JSON string is stored as its text");
        let named = storage
            .invoke(&InvokeRequest::new("create", "aGk="))
            .await
            .unwrap()
            .unwrap();
        let name: serde_json::Value = serde_json::from_slice(&named.data).unwrap();
        let name = name["fileName"].as_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&name).is_ok(), "a new name: {name}");
        let got = storage
            .invoke(&InvokeRequest::new("get", "").with("fileName", &name))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.data, "hi", "base64 content is decoded");
        let listed = storage
            .invoke(&InvokeRequest::new("list", ""))
            .await
            .unwrap()
            .unwrap();
        let listed: Vec<String> = serde_json::from_slice(&listed.data).unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed.iter().all(|p| {
            p.starts_with(
                &*dir
                    .path()
                    .join("root")
                    .canonicalize()
                    .unwrap()
                    .to_string_lossy(),
            )
        }));
        assert!(
            storage
                .invoke(&InvokeRequest::new("delete", "").with("fileName", "a/b.txt"))
                .await
                .unwrap()
                .is_none()
        );
        for operation in ["get", "delete"] {
            let err = storage
                .invoke(&InvokeRequest::new(operation, "").with("fileName", "a/b.txt"))
                .await
                .unwrap_err();
            assert!(
                matches!(err, BindingError::NotFound(_)),
                "{operation}: {err}"
            );
        }
        std::fs::create_dir_all(dir.path().join("root/empty")).unwrap();
        let empty = storage
            .invoke(&InvokeRequest::new("list", "").with("fileName", "empty"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(empty.data, "[]");
    }

    #[tokio::test]
    async fn no_path_leaves_the_root() {
        let (dir, storage) = storage().await;
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("root/escape")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), dir.path().join("root/link.txt"))
            .unwrap();
        for name in [
            "../outside/secret.txt",
            "a/../../outside/secret.txt",
            "escape/secret.txt",
            "escape/new.txt",
            "escape/deeper/new.txt",
            "link.txt",
        ] {
            for operation in ["create", "get", "delete"] {
                let err = storage
                    .invoke(&InvokeRequest::new(operation, "x").with("fileName", name))
                    .await
                    .unwrap_err();
                assert!(
                    matches!(err, BindingError::Invalid(_)),
                    "{operation} {name}: {err}"
                );
            }
        }
        assert_eq!(
            std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
            "secret"
        );
        assert!(!outside.join("new.txt").exists());
        assert!(
            !outside.join("deeper").exists(),
            "no folder is made outside either"
        );
        let listed = storage
            .invoke(&InvokeRequest::new("list", ""))
            .await
            .unwrap()
            .unwrap();
        let listed: Vec<String> = serde_json::from_slice(&listed.data).unwrap();
        assert!(listed.is_empty(), "links are not followed: {listed:?}");
        // An absolute name is taken below the root, as in daprd.
        storage
            .invoke(&InvokeRequest::new("create", r#""mine!""#).with("fileName", "/etc/passwd"))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("root/etc/passwd")).unwrap(),
            "mine!"
        );
        assert_ne!(std::fs::read_to_string("/etc/passwd").unwrap(), "mine!");
        let err = LocalStorage::open(std::path::Path::new("/proc/self"))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("not allowed"), "{err}");
    }

    async fn list(storage: &LocalStorage, name: &str) -> Vec<String> {
        let listed = storage
            .invoke(&InvokeRequest::new("list", "").with("fileName", name))
            .await
            .unwrap_or_else(|err| panic!("list {name:?}: {err}"))
            .unwrap();
        serde_json::from_slice(&listed.data).unwrap()
    }

    /// Names are cleaned as daprd cleans them: `.`, `./` and `a/..` are the
    /// root, `a/../b` is `b`; the listing goes folder by folder; base64 with
    /// line breaks is decoded; the root itself is never deleted.
    #[tokio::test]
    async fn names_are_cleaned_as_in_daprd() {
        let (dir, storage) = storage().await;
        let root = dir.path().join("root").canonicalize().unwrap();
        for name in ["a/x", "a-b.txt"] {
            storage
                .invoke(&InvokeRequest::new("create", r#""x""#).with("fileName", name))
                .await
                .unwrap();
        }
        let expected: Vec<String> = ["a/x", "a-b.txt"]
            .iter()
            .map(|n| root.join(n).to_string_lossy().into_owned())
            .collect();
        for name in ["", ".", "./", "a/..", "/"] {
            assert_eq!(list(&storage, name).await, expected, "list {name:?}");
        }
        let got = storage
            .invoke(&InvokeRequest::new("get", "").with("fileName", "a/../a-b.txt"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.data, "x");
        storage
            .invoke(&InvokeRequest::new("create", "\"aGVs\\nbG8=\"").with("fileName", "wrapped"))
            .await
            .unwrap();
        assert_eq!(std::fs::read(root.join("wrapped")).unwrap(), b"hello");
        for name in [".", "a/.."] {
            let err = storage
                .invoke(&InvokeRequest::new("delete", "").with("fileName", name))
                .await
                .unwrap_err();
            assert!(matches!(err, BindingError::Invalid(_)), "{name}: {err}");
        }
        assert!(root.join("a/x").exists());
        let err = storage
            .invoke(&InvokeRequest::new("get", "").with("fileName", "missing"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "file not found: {}",
                root.join("missing").display()
            )),
            "{err}"
        );
    }
}
