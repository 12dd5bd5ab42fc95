//! `nameresolution.kubernetes`: in a cluster every runtime is reached
//! through the headless Service `{app-id}-dapr` of its namespace, on the
//! internal port all runtimes share (50002 with Dapr's injector). Nothing is
//! registered: the cluster's DNS is the address book.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mecha_core::ComponentFactory;
use mecha_nameresolution::{NameResolver, Registration};

/// The internal port of runtimes in a cluster when none is known.
pub const DEFAULT_PORT: u16 = 50002;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// `clusterDomain` (default `cluster.local`).
    pub cluster_domain: String,
}

pub const NAMERESOLUTION_KUBERNETES: ComponentFactory<dyn NameResolver, KubernetesConfig> =
    ComponentFactory::new(
        "nameresolution.kubernetes",
        |_, metadata, _| KubernetesConfig {
            cluster_domain: metadata.string_or("clusterDomain", "cluster.local"),
        },
        |config| Box::pin(connect(config)),
    );

async fn connect(config: KubernetesConfig) -> anyhow::Result<Arc<dyn NameResolver>> {
    Ok(Arc::new(KubernetesResolver::new(config)))
}

/// Registers every component type of this crate.
pub fn register(registry: &mut mecha_core::Registry) {
    registry.register::<mecha_nameresolution::NameResolutionBlock>(NAMERESOLUTION_KUBERNETES);
}

pub struct KubernetesResolver {
    config: KubernetesConfig,
    /// This runtime's internal port, taken as every runtime's.
    port: Mutex<u16>,
}

impl KubernetesResolver {
    pub fn new(config: KubernetesConfig) -> Self {
        Self {
            config,
            port: Mutex::new(DEFAULT_PORT),
        }
    }
}

#[async_trait]
impl NameResolver for KubernetesResolver {
    async fn register(&self, registration: &Registration) -> anyhow::Result<()> {
        *self.port.lock().expect("lock") = registration.port;
        Ok(())
    }

    async fn resolve(&self, app_id: &str, namespace: Option<&str>) -> anyhow::Result<Vec<String>> {
        let namespace = namespace.filter(|ns| !ns.is_empty()).unwrap_or("default");
        let port = *self.port.lock().expect("lock");
        Ok(vec![format!(
            "{app_id}-dapr.{namespace}.svc.{}:{port}",
            self.config.cluster_domain
        )])
    }

    async fn close(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use mecha_core::{ComponentContext, Factory, MetadataReader, Properties};

    use super::*;

    #[tokio::test]
    async fn cluster_dns_names() {
        let props = Properties::new().with("clusterDomain", "example.internal");
        let meta = MetadataReader::new(&props);
        let resolver = NAMERESOLUTION_KUBERNETES
            .configure("v1", &meta, &ComponentContext::default())
            .build()
            .await
            .unwrap();
        assert!(meta.unread().is_empty());
        assert_eq!(
            resolver.resolve("orders", Some("prod")).await.unwrap(),
            vec!["orders-dapr.prod.svc.example.internal:50002".to_owned()]
        );
        let registration = Registration {
            app_id: "me".into(),
            namespace: None,
            host: None,
            port: 50010,
        };
        resolver.register(&registration).await.unwrap();
        assert_eq!(
            resolver.resolve("orders", None).await.unwrap(),
            vec!["orders-dapr.default.svc.example.internal:50010".to_owned()]
        );
    }
}
