//! The one place that knows every concrete component. Adding a component is
//! one folder under `components/` plus one line here.

use mecha_runtime::Registry;

#[allow(unused_imports)]
use compiled_out::CompiledOut;

/// Every component type compiled into this binary.
pub fn registry() -> Registry {
    let mut registry = Registry::new();

    #[cfg(feature = "memory")]
    registry.register_state(mecha_component_memory::MemoryStateFactory);
    #[cfg(feature = "memory")]
    registry.register_pubsub(mecha_component_memory::MemoryPubSubFactory);
    #[cfg(not(feature = "memory"))]
    registry.register_state(CompiledOut("state.in-memory", "memory"));
    #[cfg(not(feature = "memory"))]
    registry.register_pubsub(CompiledOut("pubsub.in-memory", "memory"));

    #[cfg(feature = "sqlite")]
    registry.register_state(mecha_component_sqlite::SqliteStateFactory);
    #[cfg(feature = "sqlite")]
    registry.register_pubsub(mecha_component_sqlite::SqlitePubSubFactory);
    #[cfg(feature = "sqlite")]
    registry.register_lock(mecha_component_sqlite::SqliteLockFactory);
    #[cfg(feature = "sqlite")]
    registry.register_nameresolution(mecha_component_sqlite::SqliteNameResolutionFactory);
    #[cfg(not(feature = "sqlite"))]
    registry.register_state(CompiledOut("state.sqlite", "sqlite"));
    #[cfg(not(feature = "sqlite"))]
    registry.register_pubsub(CompiledOut("pubsub.sqlite", "sqlite"));
    #[cfg(not(feature = "sqlite"))]
    registry.register_lock(CompiledOut("lock.sqlite", "sqlite"));

    #[cfg(feature = "redis")]
    registry.register_pubsub(mecha_component_redis::RedisPubSubFactory);
    #[cfg(feature = "redis")]
    registry.register_state(mecha_component_redis::RedisStateFactory);
    #[cfg(feature = "redis")]
    registry.register_lock(mecha_component_redis::RedisLockFactory);
    #[cfg(feature = "redis")]
    registry.register_configuration(mecha_component_redis::RedisConfigurationFactory);
    #[cfg(not(feature = "redis"))]
    registry.register_pubsub(CompiledOut("pubsub.redis", "redis"));
    #[cfg(not(feature = "redis"))]
    registry.register_state(CompiledOut("state.redis", "redis"));
    #[cfg(not(feature = "redis"))]
    registry.register_lock(CompiledOut("lock.redis", "redis"));
    #[cfg(feature = "redis")]
    registry.register_binding(mecha_component_redis::RedisBindingFactory);
    #[cfg(not(feature = "redis"))]
    registry.register_configuration(CompiledOut("configuration.redis", "redis"));
    #[cfg(not(feature = "redis"))]
    registry.register_binding(CompiledOut("bindings.redis", "redis"));
    #[cfg(feature = "postgres")]
    registry.register_state(mecha_component_postgres::PgStateFactory);
    #[cfg(feature = "postgres")]
    registry.register_configuration(mecha_component_postgres::PgConfigurationFactory);
    #[cfg(not(feature = "postgres"))]
    registry.register_state(CompiledOut("state.postgresql", "postgres"));
    #[cfg(feature = "postgres")]
    registry.register_binding(mecha_component_postgres::PgBindingFactory::NAME);
    #[cfg(feature = "postgres")]
    registry.register_binding(mecha_component_postgres::PgBindingFactory::ALIAS);
    #[cfg(not(feature = "postgres"))]
    registry.register_configuration(CompiledOut("configuration.postgresql", "postgres"));
    #[cfg(not(feature = "postgres"))]
    registry.register_binding(CompiledOut("bindings.postgresql", "postgres"));
    #[cfg(not(feature = "postgres"))]
    registry.register_binding(CompiledOut("bindings.postgres", "postgres"));
    #[cfg(feature = "mysql")]
    registry.register_state(mecha_component_mysql::MySqlStateFactory);
    #[cfg(feature = "mysql")]
    registry.register_binding(mecha_component_mysql::MySqlBindingFactory);
    #[cfg(not(feature = "mysql"))]
    registry.register_state(CompiledOut("state.mysql", "mysql"));
    #[cfg(not(feature = "mysql"))]
    registry.register_binding(CompiledOut("bindings.mysql", "mysql"));
    #[cfg(feature = "nats")]
    registry.register_pubsub(mecha_component_nats::JetStreamFactory);
    #[cfg(not(feature = "nats"))]
    registry.register_pubsub(CompiledOut("pubsub.jetstream", "nats"));
    #[cfg(feature = "rabbitmq")]
    registry.register_pubsub(mecha_component_rabbitmq::RabbitMqFactory);
    #[cfg(feature = "rabbitmq")]
    registry.register_binding(mecha_component_rabbitmq::RabbitBindingFactory);
    #[cfg(not(feature = "rabbitmq"))]
    registry.register_pubsub(CompiledOut("pubsub.rabbitmq", "rabbitmq"));
    #[cfg(not(feature = "rabbitmq"))]
    registry.register_binding(CompiledOut("bindings.rabbitmq", "rabbitmq"));
    #[cfg(feature = "mqtt")]
    registry.register_pubsub(mecha_component_mqtt::MqttFactory);
    #[cfg(feature = "mqtt")]
    registry.register_binding(mecha_component_mqtt::MqttBindingFactory);
    #[cfg(not(feature = "mqtt"))]
    registry.register_pubsub(CompiledOut("pubsub.mqtt3", "mqtt"));
    #[cfg(not(feature = "mqtt"))]
    registry.register_binding(CompiledOut("bindings.mqtt3", "mqtt"));

    #[cfg(feature = "local")]
    registry.register_secrets(mecha_component_local::FileSecretsFactory);
    #[cfg(feature = "local")]
    registry.register_secrets(mecha_component_local::EnvSecretsFactory);
    #[cfg(not(feature = "local"))]
    registry.register_secrets(CompiledOut("secretstores.local.file", "local"));
    #[cfg(not(feature = "local"))]
    registry.register_secrets(CompiledOut("secretstores.local.env", "local"));
    #[cfg(feature = "local")]
    registry.register_binding(mecha_component_local::CronFactory);
    #[cfg(feature = "local")]
    registry.register_binding(mecha_component_local::LocalStorageFactory);
    #[cfg(not(feature = "local"))]
    registry.register_binding(CompiledOut("bindings.cron", "local"));
    #[cfg(not(feature = "local"))]
    registry.register_binding(CompiledOut("bindings.localstorage", "local"));
    #[cfg(feature = "http")]
    registry.register_binding(mecha_component_http::HttpBindingFactory);
    #[cfg(not(feature = "http"))]
    registry.register_binding(CompiledOut("bindings.http", "http"));

    #[cfg(feature = "mdns")]
    registry.register_nameresolution(mecha_component_mdns::MdnsNameResolutionFactory);
    #[cfg(feature = "kubernetes")]
    registry.register_nameresolution(mecha_component_kubernetes::KubernetesNameResolutionFactory);

    registry
}

/// Stubs for component types compiled out of this binary.
#[allow(dead_code)]
mod compiled_out {
    use std::sync::Arc;

    use async_trait::async_trait;
    use mecha_bindings::Binding;
    use mecha_configuration::ConfigurationStore;
    use mecha_core::{Builder, ComponentContext, Factory, MetadataReader};
    use mecha_lock::LockStore;
    use mecha_pubsub::PubSub;
    use mecha_secrets::SecretStore;
    use mecha_state::StateStore;

    /// A component type this binary was built without: using it is a clear
    /// validation error naming the cargo feature that builds it.
    pub struct CompiledOut(pub &'static str, pub &'static str);

    impl CompiledOut {
        fn refuse(&self, metadata: &MetadataReader<'_>) {
            metadata.error(format!(
                "{} is not compiled into this binary; build mecha with the cargo feature '{}'",
                self.0, self.1
            ));
        }
    }

    /// The stub of one block: a factory that refuses, and a builder that
    /// is never reached.
    macro_rules! stub {
        ($($block:ident),* $(,)?) => {$(
            impl Factory<dyn $block> for CompiledOut {
                fn type_name(&self) -> &'static str {
                    self.0
                }

                fn compiled_out(&self) -> Option<&'static str> {
                    Some(self.1)
                }

                fn configure(
                    &self,
                    _version: &str,
                    metadata: &MetadataReader<'_>,
                    _ctx: &ComponentContext,
                ) -> Box<dyn Builder<dyn $block>> {
                    self.refuse(metadata);
                    Box::new(Never)
                }
            }

            #[async_trait]
            impl Builder<dyn $block> for Never {
                async fn build(self: Box<Self>) -> anyhow::Result<Arc<dyn $block>> {
                    anyhow::bail!("component compiled out")
                }
            }
        )*};
    }

    struct Never;

    stub!(
        StateStore,
        PubSub,
        LockStore,
        SecretStore,
        ConfigurationStore,
        Binding,
    );
}
