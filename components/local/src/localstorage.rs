//! `bindings.localstorage`: an output binding on the files of a root
//! folder — `create`, `get`, `list` and `delete`, the file named by the
//! `fileName` metadata (a new UUID when `create` gives none).
//!
//! No path leaves the root. As in daprd, names are cleaned first: `.`
//! and `a/..` name the root itself (so `list` of `.` lists the root),
//! absolute names are taken below the root, and `..` inside the name is
//! resolved; unlike daprd, a `..` that would climb out of the root is
//! refused (daprd stops it at the root without a word), and so is a path
//! through a symbolic link that points outside the root, or a file that is
//! itself a symbolic link. As in daprd, the root may not be a system folder
//! (`/proc`, `/sys`, `/boot`, `/var/run/secrets`), `create` takes a JSON
//! string's text and decodes base64 content (line breaks in it allowed),
//! and every failure is the binding's error (500). Unlike daprd, `list` of
//! an empty folder is `[]` (daprd answers `null`), and leaves out what is
//! not a regular file (daprd lists links, pipes and sockets, which `get`
//! refuses to read).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use mecha_bindings::*;
use mecha_core::ComponentFactory;

const OPERATIONS: &[&str] = &["create", "get", "list", "delete"];
const FORBIDDEN_ROOTS: &[&str] = &["/proc", "/sys", "/boot", "/var/run/secrets", "/run/secrets"];

pub const BINDINGS_LOCALSTORAGE: ComponentFactory<dyn Binding, PathBuf> = ComponentFactory::new(
    "bindings.localstorage",
    |_, metadata, _| metadata.required("rootPath").into(),
    |root| Box::pin(connect(root)),
);

async fn connect(root: PathBuf) -> anyhow::Result<Arc<dyn Binding>> {
    Ok(Arc::new(LocalStorage::open(&root).await?))
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
        let out = || invalid(format!("fileName '{name}' leads out of rootPath"));
        let mut clean = PathBuf::new();
        for part in Path::new(name).components() {
            match part {
                Component::Normal(part) => clean.push(part),
                // Absolute names are below the root, as in daprd.
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    if !clean.pop() {
                        return Err(out());
                    }
                }
            }
        }
        if clean.as_os_str().is_empty() {
            return Ok(self.root.clone());
        }
        let path = self.root.join(&clean);
        if let Some(parent) = path.parent() {
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
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(BindingError::NotFound(
                format!("file not found: {}", path.display()),
            )),
            Err(err) => Err(io(&format!("error reading file {}", path.display()), err)),
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
        if path == self.root {
            return Err(invalid(format!(
                "fileName '{name}' names rootPath itself, which is never deleted"
            )));
        }
        // A folder goes only when it is empty, as with daprd's os.Remove.
        let removed = match tokio::fs::symlink_metadata(&path).await {
            Ok(meta) if meta.is_dir() => tokio::fs::remove_dir(&path).await,
            _ => tokio::fs::remove_file(&path).await,
        };
        match removed {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(BindingError::NotFound(
                format!("file not found: {}", path.display()),
            )),
            Err(err) => Err(io(&format!("error deleting file {}", path.display()), err)),
        }
    }
}

/// A file's content: a JSON string stands for its text (the HTTP API sends
/// `data` as JSON), and base64 text for the bytes it encodes, as in daprd.
fn content(data: &[u8]) -> Vec<u8> {
    use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
    // Go's decoder skips line breaks and takes non-zero trailing bits.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let text = serde_json::from_slice::<String>(data).ok();
    let text = text.as_deref().map(str::as_bytes).unwrap_or(data);
    let unwrapped: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    LENIENT.decode(&unwrapped).unwrap_or_else(|_| text.to_vec())
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
        return Err(invalid(format!(
            "unable to list files as the file specified is not a directory: {}",
            start.display()
        )));
    }
    let mut files = Vec::new();
    let mut folders = vec![start.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            // As daprd's walk, a folder below that cannot be read is skipped.
            Err(_) if folder != start => continue,
            Err(err) => return Err(io("listing", err)),
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                folders.push(path);
            } else if kind.is_file() && path.starts_with(root) {
                files.push(path);
            }
        }
    }
    // Folder by folder, as daprd's walk orders them (`a/x` before `a-b`).
    files.sort();
    Ok(files
        .into_iter()
        .map(|path| path.to_string_lossy().into_owned())
        .collect())
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
