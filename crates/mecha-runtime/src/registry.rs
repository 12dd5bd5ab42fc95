//! The registry of component types. Only `components/registry` and the
//! binaries fill it; the runtime knows no concrete component.

use std::collections::BTreeMap;
use std::sync::Arc;

use mecha_bindings::Binding;
use mecha_configuration::ConfigurationStore;
use mecha_core::Factory;
use mecha_lock::LockStore;
use mecha_nameresolution::NameResolver;
use mecha_pubsub::PubSub;
use mecha_secrets::SecretStore;
use mecha_state::StateStore;

/// The block of name resolution, which a Configuration names, not a
/// resource file.
const NAME_RESOLUTION: &str = "nameresolution";

/// One registered component type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeEntry {
    pub type_name: &'static str,
    /// The building block, as the type names it (`state`, `bindings`, ...).
    pub block: &'static str,
    /// The cargo feature that builds a type compiled out of this binary.
    pub compiled_out: Option<&'static str>,
}

/// Every component type the runtime can build, by building block.
#[derive(Default, Clone)]
pub struct Registry {
    state: BTreeMap<&'static str, Arc<dyn Factory<dyn StateStore>>>,
    pubsub: BTreeMap<&'static str, Arc<dyn Factory<dyn PubSub>>>,
    nameresolution: BTreeMap<&'static str, Arc<dyn Factory<dyn NameResolver>>>,
    lock: BTreeMap<&'static str, Arc<dyn Factory<dyn LockStore>>>,
    secrets: BTreeMap<&'static str, Arc<dyn Factory<dyn SecretStore>>>,
    configuration: BTreeMap<&'static str, Arc<dyn Factory<dyn ConfigurationStore>>>,
    bindings: BTreeMap<&'static str, Arc<dyn Factory<dyn Binding>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a state component type.
    ///
    /// # Panics
    /// When the type is registered twice: the registry is a fixed list, so
    /// a duplicate is a programming error.
    pub fn register_state(&mut self, factory: impl Factory<dyn StateStore> + 'static) {
        let name = factory.type_name();
        let previous = self.state.insert(name, Arc::new(factory));
        assert!(previous.is_none(), "component type {name} registered twice");
    }

    pub fn state(&self, type_name: &str) -> Option<&Arc<dyn Factory<dyn StateStore>>> {
        self.state.get(type_name)
    }

    /// Registers a pub/sub component type.
    pub fn register_pubsub(&mut self, factory: impl Factory<dyn PubSub> + 'static) {
        let name = factory.type_name();
        let previous = self.pubsub.insert(name, Arc::new(factory));
        assert!(previous.is_none(), "component type {name} registered twice");
    }

    pub fn pubsub(&self, type_name: &str) -> Option<&Arc<dyn Factory<dyn PubSub>>> {
        self.pubsub.get(type_name)
    }

    /// Registers a lock component type.
    pub fn register_lock(&mut self, factory: impl Factory<dyn LockStore> + 'static) {
        let name = factory.type_name();
        let previous = self.lock.insert(name, Arc::new(factory));
        assert!(previous.is_none(), "component type {name} registered twice");
    }

    pub fn lock(&self, type_name: &str) -> Option<&Arc<dyn Factory<dyn LockStore>>> {
        self.lock.get(type_name)
    }

    /// Registers a secret store component type.
    pub fn register_secrets(&mut self, factory: impl Factory<dyn SecretStore> + 'static) {
        let name = factory.type_name();
        let previous = self.secrets.insert(name, Arc::new(factory));
        assert!(previous.is_none(), "component type {name} registered twice");
    }

    pub fn secrets(&self, type_name: &str) -> Option<&Arc<dyn Factory<dyn SecretStore>>> {
        self.secrets.get(type_name)
    }

    /// Registers a configuration store component type.
    pub fn register_configuration(
        &mut self,
        factory: impl Factory<dyn ConfigurationStore> + 'static,
    ) {
        let name = factory.type_name();
        let previous = self.configuration.insert(name, Arc::new(factory));
        assert!(previous.is_none(), "component type {name} registered twice");
    }

    pub fn configuration(
        &self,
        type_name: &str,
    ) -> Option<&Arc<dyn Factory<dyn ConfigurationStore>>> {
        self.configuration.get(type_name)
    }

    /// Registers a binding component type.
    pub fn register_binding(&mut self, factory: impl Factory<dyn Binding> + 'static) {
        let name = factory.type_name();
        let previous = self.bindings.insert(name, Arc::new(factory));
        assert!(previous.is_none(), "component type {name} registered twice");
    }

    pub fn binding(&self, type_name: &str) -> Option<&Arc<dyn Factory<dyn Binding>>> {
        self.bindings.get(type_name)
    }

    /// Registers a name resolution component type.
    pub fn register_nameresolution(&mut self, factory: impl Factory<dyn NameResolver> + 'static) {
        let name = factory.type_name();
        let previous = self.nameresolution.insert(name, Arc::new(factory));
        assert!(previous.is_none(), "component type {name} registered twice");
    }

    /// A name resolution factory, by `nameresolution.x` or by the short
    /// name `Configuration` uses (`x`).
    pub fn nameresolution(&self, name: &str) -> Option<&Arc<dyn Factory<dyn NameResolver>>> {
        self.nameresolution.get(name).or_else(|| {
            self.nameresolution
                .get(format!("nameresolution.{name}").as_str())
        })
    }

    /// Every known component type (loadable from resource files), sorted.
    pub fn known_types(&self) -> Vec<&'static str> {
        self.types()
            .into_iter()
            .filter(|t| t.block != NAME_RESOLUTION)
            .map(|t| t.type_name)
            .collect()
    }

    /// Every registered type with its block, sorted by type; `compiled_out`
    /// names the cargo feature of a type this binary was built without.
    pub fn types(&self) -> Vec<TypeEntry> {
        fn entries<'a, T: ?Sized>(
            block: &'static str,
            map: &'a BTreeMap<&'static str, Arc<dyn Factory<T>>>,
        ) -> impl Iterator<Item = TypeEntry> + 'a {
            map.iter().map(move |(name, factory)| TypeEntry {
                type_name: name,
                block,
                compiled_out: factory.compiled_out(),
            })
        }
        let mut types: Vec<TypeEntry> = entries("state", &self.state)
            .chain(entries("pubsub", &self.pubsub))
            .chain(entries("lock", &self.lock))
            .chain(entries("secretstores", &self.secrets))
            .chain(entries("configuration", &self.configuration))
            .chain(entries("bindings", &self.bindings))
            .chain(entries(NAME_RESOLUTION, &self.nameresolution))
            .collect();
        types.sort_by_key(|t| t.type_name);
        types
    }

    /// Every known name resolution type, sorted.
    pub fn known_nameresolution(&self) -> Vec<&'static str> {
        self.nameresolution.keys().copied().collect()
    }
}
