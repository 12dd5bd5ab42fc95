//! The runtime's identity, status and shutdown signal, shared by the API
//! layer, the services and the process lifecycle.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use mecha_core::{ComponentStore, HostStatus};
use tokio::sync::watch;

/// How the runtime reaches its app (`--app-*` flags).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppConnection {
    pub port: Option<u16>,
    pub protocol: String,
    pub channel_address: String,
    pub max_concurrency: Option<u32>,
    pub health: Option<AppHealthCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppHealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub threshold: u32,
}

/// Who this runtime is. Fixed at start.
#[derive(Clone, Debug, Default)]
pub struct RuntimeInfo {
    pub app_id: String,
    pub namespace: Option<String>,
    pub runtime_version: String,
    pub data_dir: PathBuf,
    pub app: AppConnection,
    pub enabled_features: Vec<String>,
    pub placement_addresses: Vec<String>,
    /// `DAPR_API_TOKEN`: every API call must carry it.
    pub api_token: Option<String>,
    /// `APP_API_TOKEN`: sent as `dapr-api-token` on every call to the app
    /// (by the app channel).
    pub app_api_token: Option<String>,
    /// `--max-body-size`, in bytes.
    pub max_body_size: usize,
    /// `--request-memory-budget`, in bytes: request bodies held at once
    /// (at least one body of `max_body_size`).
    pub request_memory_budget: usize,
    /// `--request-memory-wait`: how long a body waits for room in it.
    pub request_memory_wait: std::time::Duration,
}

impl RuntimeInfo {
    /// Where the component named `name` is built.
    pub fn component_context(&self, name: &str) -> mecha_core::ComponentContext {
        mecha_core::ComponentContext {
            name: name.to_owned(),
            app_id: self.app_id.clone(),
            namespace: self.namespace.clone(),
            data_dir: self.data_dir.clone(),
        }
    }
}

/// The runtime's shared state.
pub struct Runtime {
    pub info: RuntimeInfo,
    components: RwLock<Arc<ComponentStore>>,
    components_ready: AtomicBool,
    api_ready: AtomicBool,
    /// True once the app listens (at once when there is no app).
    app_ready: AtomicBool,
    /// True once every service of the host started: among them name
    /// resolution, so a ready runtime is one that others can find.
    started: AtomicBool,
    extended: RwLock<BTreeMap<String, String>>,
    /// True once components are ready, the API and the app listen, and
    /// every service started.
    ready: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
}

impl Runtime {
    pub fn new(info: RuntimeInfo) -> Arc<Self> {
        let has_app = info.app.port.is_some();
        Arc::new(Self {
            info,
            components: RwLock::default(),
            components_ready: AtomicBool::new(false),
            api_ready: AtomicBool::new(false),
            app_ready: AtomicBool::new(!has_app),
            started: AtomicBool::new(false),
            extended: RwLock::default(),
            ready: watch::channel(false).0,
            shutdown: watch::channel(false).0,
        })
    }

    /// The live components.
    pub fn components(&self) -> Arc<ComponentStore> {
        self.components.read().expect("lock").clone()
    }

    /// Installs the built components and marks them ready.
    pub fn set_components(&self, store: ComponentStore) {
        *self.components.write().expect("lock") = Arc::new(store);
        self.components_ready.store(true, Ordering::Release);
        self.update_ready();
    }

    fn update_ready(&self) {
        self.ready.send_replace(
            self.components_ready() && self.api_ready() && self.app_ready() && self.started(),
        );
    }

    /// Marks every service of the host as started.
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Release);
        self.update_ready();
    }

    fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Marks the app as listening on its port.
    pub fn set_app_ready(&self) {
        self.app_ready.store(true, Ordering::Release);
        self.update_ready();
    }

    pub fn app_ready(&self) -> bool {
        self.app_ready.load(Ordering::Acquire)
    }

    /// Every component is ready, the API listens, the app (if any) listens
    /// too, and every service started.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once the runtime [is ready](Self::is_ready).
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    pub fn components_ready(&self) -> bool {
        self.components_ready.load(Ordering::Acquire)
    }

    /// Marks the API listeners as up.
    pub fn set_api_ready(&self) {
        self.api_ready.store(true, Ordering::Release);
        self.update_ready();
    }

    pub fn api_ready(&self) -> bool {
        self.api_ready.load(Ordering::Acquire)
    }

    /// Attributes set through `PUT /v1.0/metadata/{key}`.
    pub fn extended(&self) -> BTreeMap<String, String> {
        self.extended.read().expect("lock").clone()
    }

    pub fn set_extended(&self, key: String, value: String) {
        self.extended.write().expect("lock").insert(key, value);
    }

    /// Asks the process to shut down gracefully.
    pub fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once a shutdown was requested.
    pub async fn shutdown_requested(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|requested| *requested).await;
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

#[async_trait]
impl HostStatus for Runtime {
    fn components(&self) -> Arc<ComponentStore> {
        Runtime::components(self)
    }

    async fn wait_ready(&self) {
        Runtime::wait_ready(self).await
    }

    fn is_shutting_down(&self) -> bool {
        Runtime::is_shutting_down(self)
    }
}
