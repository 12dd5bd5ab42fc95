//! `bindings.localstorage`: an output binding on the files of a root
//! folder — `create`, `get`, `list` and `delete`, the file named by the
//! `fileName` metadata (a new UUID when `create` gives none).
//!
//! No path leaves the root: names that are absolute or hold `..` are
//! refused, and so is a path through a symbolic link that points outside
//! the root, or a file that is itself a symbolic link. As in daprd, the
//! root may not be a system folder (`/proc`, `/sys`, `/boot`,
//! `/var/run/secrets`), and `create` takes a JSON string's text and decodes
//! base64 content. Unlike daprd, `list` of an empty folder is `[]` (daprd
//! answers `null`), and deleting a file that is not there is "not found".

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use mecha_bindings::*;
use mecha_core::{Builder, ComponentContext, Factory, MetadataReader};

const OPERATIONS: &[&str] = &["create", "get", "list", "delete"];
const FORBIDDEN_ROOTS: &[&str] = &["/proc", "/sys", "/boot", "/var/run/secrets", "/run/secrets"];

pub struct LocalStorageFactory;

impl Factory<dyn Binding> for LocalStorageFactory {
    fn type_name(&self) -> &'static str {
        "bindings.localstorage"
    }

    fn configure(
        &self,
        _version: &str,
        metadata: &MetadataReader<'_>,
        _ctx: &ComponentContext,
    ) -> Box<dyn Builder<dyn Binding>> {
        Box::new(LocalStorageBuilder(metadata.required("rootPath").into()))
    }
}

struct LocalStorageBuilder(PathBuf);

#[async_trait]
impl Builder<dyn Binding> for LocalStorageBuilder {
    async fn build(self: Box<Self>) -> anyhow::Result<Arc<dyn Binding>> {
        Ok(Arc::new(LocalStorage::open(&self.0).await?))
    }
}

/// The `bindings.localstorage` binding.
pub struct LocalStorage {
    /// The root, absolute and with its links resolved.
    root: PathBuf,
}

fn invalid(message: impl Into<String>) -> BindingError {
    BindingError::Invalid(message.into())
}

fn io(what: &str, err: std::io::Error) -> BindingError {
    BindingError::Backend(anyhow::anyhow!("{what}: {err}"))
}

impl LocalStorage {
    /// Creates the root if needed and resolves it.
    pub async fn open(root: &Path) -> anyhow::Result<Self> {
        tokio::fs::create_dir_all(root)
            .await
            .map_err(|err| anyhow::anyhow!("cannot create rootPath {}: {err}", root.display()))?;
        let root = tokio::fs::canonicalize(root)
            .await
            .map_err(|err| anyhow::anyhow!("cannot resolve rootPath {}: {err}", root.display()))?;
        if let Some(system) = FORBIDDEN_ROOTS
            .iter()
            .find(|forbidden| root.starts_with(forbidden))
        {
            anyhow::bail!(
                "rootPath {} is inside {system}, which is not allowed",
                root.display()
            );
        }
        Ok(Self { root })
    }

    /// The path of `name` inside the root, refusing any way out of it. With
    /// `create`, missing folders on the way are made (inside the root).
    async fn resolve(&self, name: &str, create: bool) -> Result<PathBuf, BindingError> {
        let relative = Path::new(name);
        let mut clean = PathBuf::new();
        for part in relative.components() {
            match part {
                Component::Normal(part) => clean.push(part),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(invalid(format!("fileName '{name}' may not hold '..'")));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(invalid(format!(
                        "fileName '{name}' must be relative to rootPath"
                    )));
                }
            }
        }
        let path = self.root.join(&clean);
        if let Some(parent) = path.parent() {
            let out = || invalid(format!("fileName '{name}' leads out of rootPath"));
            // The deepest folder on the way that exists, links resolved, must
            // be inside the root before anything is made below it.
            let mut existing = parent;
            while !existing.exists() {
                existing = existing.parent().ok_or_else(out)?;
            }
            let real = tokio::fs::canonicalize(existing)
                .await
                .map_err(|err| io("resolving the folder", err))?;
            if !real.starts_with(&self.root) {
                return Err(out());
            }
            if create {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|err| io("creating the folder", err))?;
                let real = tokio::fs::canonicalize(parent)
                    .await
                    .map_err(|err| io("resolving the folder", err))?;
                if !real.starts_with(&self.root) {
                    return Err(out());
                }
            }
        }
        if let Ok(meta) = tokio::fs::symlink_metadata(&path).await
            && meta.file_type().is_symlink()
        {
            return Err(invalid(format!("fileName '{name}' is a symbolic link")));
        }
        Ok(path)
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    async fn create(&self, req: &InvokeRequest) -> Result<InvokeResponse, BindingError> {
        let name = match req.meta("fileName").filter(|n| !n.is_empty()) {
            Some(name) => name.to_owned(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let path = self.resolve(&name, true).await?;
        tokio::fs::write(&path, content(&req.data))
            .await
            .map_err(|err| io("writing the file", err))?;
        let answer = serde_json::json!({ "fileName": self.relative(&path) });
        Ok(InvokeResponse {
            data: Bytes::from(answer.to_string()),
            metadata: Metadata::new(),
        })
    }

    async fn get(&self, req: &InvokeRequest) -> Result<InvokeResponse, BindingError> {
        let name = req
            .meta("fileName")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("required metadata 'fileName' is missing"))?;
        let path = self.resolve(name, false).await?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(InvokeResponse {
                data: Bytes::from(bytes),
                metadata: Metadata::new(),
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Err(BindingError::NotFound(format!("file not found: {name}")))
            }
            Err(err) => Err(io("reading the file", err)),
        }
    }

    async fn list(&self, req: &InvokeRequest) -> Result<InvokeResponse, BindingError> {
        let start = match req.meta("fileName").filter(|n| !n.is_empty()) {
            Some(name) => self.resolve(name, false).await?,
            None => self.root.clone(),
        };
        let root = self.root.clone();
        let files = tokio::task::spawn_blocking(move || walk(&start, &root))
            .await
            .map_err(|err| BindingError::Backend(err.into()))??;
        Ok(InvokeResponse {
            data: Bytes::from(serde_json::to_string(&files).expect("strings")),
            metadata: Metadata::new(),
        })
    }

    async fn delete(&self, req: &InvokeRequest) -> Result<(), BindingError> {
        let name = req
            .meta("fileName")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("required metadata 'fileName' is missing"))?;
        let path = self.resolve(name, false).await?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Err(BindingError::NotFound(format!("file not found: {name}")))
            }
            Err(err) => Err(io("deleting the file", err)),
        }
    }
}

/// A file's content: a JSON string stands for its text (the HTTP API sends
/// `data` as JSON), and base64 text for the bytes it encodes, as in daprd.
fn content(data: &[u8]) -> Vec<u8> {
    let text = serde_json::from_slice::<String>(data).ok();
    let text = text.as_deref().map(str::as_bytes).unwrap_or(data);
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|_| text.to_vec())
}

/// Every file below `start` (which must be a folder inside `root`), by
/// absolute path, not following links.
fn walk(start: &Path, root: &Path) -> Result<Vec<String>, BindingError> {
    let meta = std::fs::symlink_metadata(start).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => {
            BindingError::NotFound(format!("folder not found: {}", start.display()))
        }
        _ => io("listing", err),
    })?;
    if !meta.is_dir() {
        return Err(invalid(format!("{} is not a folder", start.display())));
    }
    let mut files = Vec::new();
    let mut folders = vec![start.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).map_err(|err| io("listing", err))? {
            let entry = entry.map_err(|err| io("listing", err))?;
            let kind = entry.file_type().map_err(|err| io("listing", err))?;
            let path = entry.path();
            if kind.is_dir() {
                folders.push(path);
            } else if kind.is_file() && path.starts_with(root) {
                files.push(path.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    Ok(files)
}

impl Binding for LocalStorage {
    fn output(self: Arc<Self>) -> Option<Arc<dyn OutputBinding>> {
        Some(self)
    }
}

#[async_trait]
impl OutputBinding for LocalStorage {
    fn operations(&self) -> &[&'static str] {
        OPERATIONS
    }

    async fn invoke(&self, req: &InvokeRequest) -> Result<Option<InvokeResponse>, BindingError> {
        self.check_operation(&req.operation)?;
        match req.operation.as_str() {
            "create" => self.create(req).await.map(Some),
            "get" => self.get(req).await.map(Some),
            "list" => self.list(req).await.map(Some),
            _ => self.delete(req).await.map(|()| None),
        }
    }
}
