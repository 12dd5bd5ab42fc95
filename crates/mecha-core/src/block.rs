//! Building blocks, generically. A block (state, pub/sub, ...) is one
//! implementation of [`Block`]; the [`Registry`] of component types, the
//! planning and building of components and the [`ComponentStore`] of live
//! ones handle every block alike, keyed by the block's type.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::component::{ComponentContext, Factory};
use crate::metadata::{MetadataReader, Properties};

/// A future that is sent between threads.
pub type SendFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One building block: the contract its components implement, the keys
/// of their metadata that the runtime reads itself, and the live handle
/// the API calls.
pub trait Block: 'static {
    /// The block as type names say it: `state` in `state.redis`.
    const KIND: &'static str;
    /// What one of its components is called in messages ("state store").
    const NOUN: &'static str = Self::KIND;
    /// Whether its components come from resource files (name resolution
    /// comes from the `Configuration` instead).
    const FROM_RESOURCES: bool = true;
    /// Whether its components are secret stores: they are built before the
    /// others, whose `secretKeyRef`s they resolve, and cannot use one.
    const SECRET_STORES: bool = false;
    /// A boolean metadata key that at most one component of the block may
    /// set (`actorStateStore`).
    const EXCLUSIVE_FLAG: Option<&'static str> = None;

    /// The contract of its components (`dyn StateStore`).
    type Component: ?Sized + Send + Sync + 'static;
    /// What the runtime reads from a component's metadata for itself.
    type Settings: Send + 'static;
    /// A live component as the API uses it.
    type Handle: Send + Sync + 'static;

    /// Fills metadata the component leaves out, before it is read.
    fn defaults(_properties: &mut Properties, _spec: &ComponentSpec) {}

    /// Reads the runtime's own keys (pure; problems go to the reader).
    fn settings(metadata: &MetadataReader<'_>, spec: &ComponentSpec) -> Self::Settings;

    /// Wraps a built component.
    fn handle(
        component: Arc<Self::Component>,
        settings: Self::Settings,
        spec: &ComponentSpec,
    ) -> Self::Handle;

    /// What the metadata API lists for the component.
    fn capabilities(_handle: &Self::Handle) -> Vec<String> {
        Vec::new()
    }

    /// For a secret store: where other components read their secrets.
    fn secret_source(_handle: &Self::Handle) -> Option<Arc<dyn SecretSource>> {
        None
    }
}

/// A secret store as other components' `secretKeyRef`s use it.
pub trait SecretSource: Send + Sync {
    /// The value of `key` in secret `name`.
    fn resolve<'a>(&'a self, name: &'a str, key: &'a str)
    -> SendFuture<'a, Result<String, String>>;
}

/// What a block knows of a component besides its metadata.
#[derive(Clone, Debug, Default)]
pub struct ComponentSpec {
    pub ctx: ComponentContext,
    pub type_name: String,
    pub version: String,
    /// Whether a metadata value names `{namespace}`.
    pub namespaced: bool,
    /// Settings of the runtime that blocks read (from the `Configuration`).
    pub settings: Arc<RuntimeSettings>,
}

/// Settings that blocks read, by type: the runtime fills it from its
/// `Configuration`, and each block looks up its own (the secret scopes).
#[derive(Default)]
pub struct RuntimeSettings(HashMap<TypeId, Box<dyn Any + Send + Sync>>);

impl RuntimeSettings {
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

impl std::fmt::Debug for RuntimeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeSettings")
            .field("entries", &self.0.len())
            .finish()
    }
}

/// What planning needs to know of a block, without its types.
#[derive(Clone, Copy, Debug)]
pub struct BlockInfo {
    pub kind: &'static str,
    pub noun: &'static str,
    pub from_resources: bool,
    pub secret_stores: bool,
    pub exclusive_flag: Option<&'static str>,
    defaults: fn(&mut Properties, &ComponentSpec),
}

impl BlockInfo {
    pub fn of<B: Block>() -> Self {
        Self {
            kind: B::KIND,
            noun: B::NOUN,
            from_resources: B::FROM_RESOURCES,
            secret_stores: B::SECRET_STORES,
            exclusive_flag: B::EXCLUSIVE_FLAG,
            defaults: B::defaults,
        }
    }

    /// Fills metadata the component leaves out.
    pub fn defaults(&self, properties: &mut Properties, spec: &ComponentSpec) {
        (self.defaults)(properties, spec)
    }
}

/// A component type of any block.
pub trait ComponentType: Send + Sync {
    fn block(&self) -> BlockInfo;

    /// The `spec.version`s it accepts; the first is the default.
    fn versions(&self) -> &'static [&'static str];

    /// Pure: reads the metadata (the runtime's keys and the component's),
    /// recording every problem in the reader.
    fn configure(&self, metadata: &MetadataReader<'_>, spec: &ComponentSpec)
    -> Box<dyn Configured>;

    fn as_any(&self) -> &dyn Any;
}

/// A configured component, ready to be built.
pub trait Configured: Send {
    fn build(self: Box<Self>) -> SendFuture<'static, anyhow::Result<LiveComponent>>;
}

/// A built component of any block.
pub struct LiveComponent {
    block: TypeId,
    handle: Box<dyn Any + Send + Sync>,
    capabilities: Vec<String>,
    secret_source: Option<Arc<dyn SecretSource>>,
}

/// A component type of block `B`.
struct Typed<B: Block> {
    factory: Arc<dyn Factory<B::Component>>,
}

impl<B: Block> ComponentType for Typed<B> {
    fn block(&self) -> BlockInfo {
        BlockInfo::of::<B>()
    }

    fn versions(&self) -> &'static [&'static str] {
        self.factory.versions()
    }

    fn configure(
        &self,
        metadata: &MetadataReader<'_>,
        spec: &ComponentSpec,
    ) -> Box<dyn Configured> {
        let settings = B::settings(metadata, spec);
        let builder = self.factory.configure(&spec.version, metadata, &spec.ctx);
        Box::new(TypedConfigured::<B> {
            builder,
            settings,
            spec: spec.clone(),
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct TypedConfigured<B: Block> {
    builder: Box<dyn crate::component::Builder<B::Component>>,
    settings: B::Settings,
    spec: ComponentSpec,
}

impl<B: Block> Configured for TypedConfigured<B> {
    fn build(self: Box<Self>) -> SendFuture<'static, anyhow::Result<LiveComponent>> {
        let TypedConfigured {
            builder,
            settings,
            spec,
        } = *self;
        Box::pin(async move {
            let component = builder.build().await?;
            let handle = B::handle(component, settings, &spec);
            Ok(LiveComponent {
                block: TypeId::of::<B>(),
                capabilities: B::capabilities(&handle),
                secret_source: B::secret_source(&handle),
                handle: Box::new(handle),
            })
        })
    }
}

/// What configuring a type compiled out of this binary answers.
struct NeverBuilt(String);

impl Configured for NeverBuilt {
    fn build(self: Box<Self>) -> SendFuture<'static, anyhow::Result<LiveComponent>> {
        Box::pin(async move { Err(anyhow::anyhow!(self.0)) })
    }
}

/// One registered component type.
#[derive(Clone)]
pub struct TypeEntry {
    pub type_name: &'static str,
    /// The building block, as the type names it (`state`, `bindings`, ...).
    pub block: &'static str,
    /// The cargo feature that builds a type compiled out of this binary.
    pub compiled_out: Option<&'static str>,
    /// `None` for a type compiled out.
    component: Option<Arc<dyn ComponentType>>,
}

impl std::fmt::Debug for TypeEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeEntry")
            .field("type_name", &self.type_name)
            .field("block", &self.block)
            .field("compiled_out", &self.compiled_out)
            .finish()
    }
}

/// Every component type the runtime can build, of every block.
#[derive(Clone, Default)]
pub struct Registry {
    types: BTreeMap<&'static str, TypeEntry>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a component type of block `B`.
    ///
    /// # Panics
    /// When the type is registered twice: the registry is a fixed list, so
    /// a duplicate is a programming error.
    pub fn register<B: Block>(&mut self, factory: impl Factory<B::Component> + 'static) {
        let type_name = factory.type_name();
        self.insert(TypeEntry {
            type_name,
            block: B::KIND,
            compiled_out: None,
            component: Some(Arc::new(Typed::<B> {
                factory: Arc::new(factory),
            })),
        });
    }

    /// Registers a type this binary was built without; `feature` builds it.
    pub fn register_compiled_out(&mut self, type_name: &'static str, feature: &'static str) {
        let block = type_name.split('.').next().unwrap_or(type_name);
        self.insert(TypeEntry {
            type_name,
            block,
            compiled_out: Some(feature),
            component: None,
        });
    }

    /// Adds every type of `other`.
    ///
    /// # Panics
    /// When a type is in both.
    pub fn merge(&mut self, other: Registry) {
        for entry in other.types.into_values() {
            self.insert(entry);
        }
    }

    fn insert(&mut self, entry: TypeEntry) {
        let name = entry.type_name;
        let previous = self.types.insert(name, entry);
        assert!(previous.is_none(), "component type {name} registered twice");
    }

    /// The component type named `type_name`, of any block.
    pub fn get(&self, type_name: &str) -> Option<&TypeEntry> {
        self.types.get(type_name)
    }

    /// The factory of a type of block `B`; `None` when there is no such
    /// type, it is of another block, or it is compiled out.
    pub fn factory<B: Block>(&self, type_name: &str) -> Option<Arc<dyn Factory<B::Component>>> {
        let component = self.types.get(type_name)?.component.as_ref()?;
        let typed = component.as_any().downcast_ref::<Typed<B>>()?;
        Some(typed.factory.clone())
    }

    /// What the registry knows of the block a type names, when a type of
    /// it is compiled in.
    pub fn block(&self, kind: &str) -> Option<BlockInfo> {
        self.types
            .values()
            .filter(|t| t.block == kind)
            .find_map(TypeEntry::block_info)
    }

    /// Every registered type with its block, sorted by type.
    pub fn types(&self) -> Vec<TypeEntry> {
        self.types.values().cloned().collect()
    }

    /// Every type loadable from resource files, sorted.
    pub fn known_types(&self) -> Vec<&'static str> {
        self.types
            .values()
            .filter(|t| self.block(t.block).is_none_or(|b| b.from_resources))
            .map(|t| t.type_name)
            .collect()
    }
}

impl TypeEntry {
    /// The block of the type, when it is compiled in.
    pub fn block_info(&self) -> Option<BlockInfo> {
        self.component.as_ref().map(|c| c.block())
    }

    /// The `spec.version`s the type accepts.
    pub fn versions(&self) -> &'static [&'static str] {
        match &self.component {
            Some(component) => component.versions(),
            None => &["v1"],
        }
    }

    /// For a type compiled out of this binary: the error that names the
    /// cargo feature that builds it.
    pub fn compiled_out_problem(&self) -> Option<String> {
        self.compiled_out.map(|feature| {
            format!(
                "{} is not compiled into this binary; build mecha with the cargo feature '{feature}'",
                self.type_name
            )
        })
    }

    /// Configures a component of this type (pure; problems go to the
    /// reader, including that the type is compiled out).
    pub fn configure(
        &self,
        metadata: &MetadataReader<'_>,
        spec: &ComponentSpec,
    ) -> Box<dyn Configured> {
        match (&self.component, self.compiled_out_problem()) {
            (Some(component), _) => component.configure(metadata, spec),
            (None, problem) => {
                let problem = problem.unwrap_or_default();
                metadata.error(problem.clone());
                Box::new(NeverBuilt(problem))
            }
        }
    }
}

/// What the metadata API says about a loaded component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentInfo {
    pub name: String,
    pub type_name: String,
    pub version: String,
    pub capabilities: Vec<String>,
}

/// The live components of every block, by name.
#[derive(Default)]
pub struct ComponentStore {
    /// By block: a handful, so a scan beats hashing on every call.
    blocks: Vec<(TypeId, Named)>,
    secret_sources: HashMap<String, Arc<dyn SecretSource>>,
    infos: Vec<ComponentInfo>,
}

type Named = BTreeMap<String, Box<dyn Any + Send + Sync>>;

impl ComponentStore {
    fn named(&self, block: TypeId) -> Option<&Named> {
        self.blocks
            .iter()
            .find(|(id, _)| *id == block)
            .map(|(_, named)| named)
    }

    /// The component of block `B` named `name`.
    pub fn get<B: Block>(&self, name: &str) -> Option<&B::Handle> {
        self.named(TypeId::of::<B>())?.get(name)?.downcast_ref()
    }

    /// Whether any component of block `B` is loaded.
    pub fn has<B: Block>(&self) -> bool {
        self.named(TypeId::of::<B>())
            .is_some_and(|named| !named.is_empty())
    }

    /// Every component of block `B`, by name.
    pub fn all<B: Block>(&self) -> impl Iterator<Item = &B::Handle> {
        self.named(TypeId::of::<B>())
            .into_iter()
            .flat_map(|named| named.values())
            .filter_map(|handle| handle.downcast_ref())
    }

    /// The secret store named `name`, as other components read it.
    pub fn secret_source(&self, name: &str) -> Option<&Arc<dyn SecretSource>> {
        self.secret_sources.get(name)
    }

    /// Every loaded component, in load order.
    pub fn infos(&self) -> &[ComponentInfo] {
        &self.infos
    }

    /// Adds a built component under its name.
    pub fn install(&mut self, name: &str, type_name: &str, version: &str, live: LiveComponent) {
        self.infos.push(ComponentInfo {
            name: name.to_owned(),
            type_name: type_name.to_owned(),
            version: version.to_owned(),
            capabilities: live.capabilities,
        });
        if let Some(source) = live.secret_source {
            self.secret_sources.insert(name.to_owned(), source);
        }
        let at = match self.blocks.iter().position(|(id, _)| *id == live.block) {
            Some(at) => at,
            None => {
                self.blocks.push((live.block, Named::new()));
                self.blocks.len() - 1
            }
        };
        self.blocks[at].1.insert(name.to_owned(), live.handle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::ComponentFactory;

    trait Greeter: Send + Sync {
        fn greet(&self) -> String;
    }

    struct Hello(String);

    impl Greeter for Hello {
        fn greet(&self) -> String {
            format!("hello {}", self.0)
        }
    }

    struct Greetings;

    impl Block for Greetings {
        const KIND: &'static str = "greetings";
        const EXCLUSIVE_FLAG: Option<&'static str> = Some("primary");
        type Component = dyn Greeter;
        type Settings = bool;
        type Handle = (String, Arc<dyn Greeter>, bool);

        fn defaults(properties: &mut Properties, spec: &ComponentSpec) {
            if properties.get("who").is_none() {
                properties.0.push(("who".into(), spec.ctx.app_id.clone()));
            }
        }

        fn settings(metadata: &MetadataReader<'_>, _spec: &ComponentSpec) -> bool {
            metadata.bool_or("primary", false)
        }

        fn handle(
            component: Arc<dyn Greeter>,
            primary: bool,
            spec: &ComponentSpec,
        ) -> Self::Handle {
            (spec.ctx.name.clone(), component, primary)
        }

        fn capabilities(handle: &Self::Handle) -> Vec<String> {
            if handle.2 {
                vec!["PRIMARY".into()]
            } else {
                Vec::new()
            }
        }
    }

    async fn connect(who: String) -> anyhow::Result<Arc<dyn Greeter>> {
        anyhow::ensure!(!who.is_empty(), "nobody to greet");
        Ok(Arc::new(Hello(who)))
    }

    const GREETINGS_HELLO: ComponentFactory<dyn Greeter, String> = ComponentFactory::new(
        "greetings.hello",
        |_, metadata, _| metadata.required("who"),
        |who| Box::pin(connect(who)),
    )
    .with_versions(&["v1", "v2"]);

    fn registry() -> Registry {
        let mut registry = Registry::new();
        registry.register::<Greetings>(GREETINGS_HELLO);
        registry.register::<Greetings>(GREETINGS_HELLO.named("greetings.alias"));
        registry.register_compiled_out("greetings.far", "far");
        registry
    }

    fn spec(name: &str, type_name: &str) -> ComponentSpec {
        ComponentSpec {
            ctx: ComponentContext {
                name: name.into(),
                app_id: "app".into(),
                ..ComponentContext::default()
            },
            type_name: type_name.into(),
            version: "v1".into(),
            ..ComponentSpec::default()
        }
    }

    #[tokio::test]
    async fn a_component_is_configured_built_and_found_by_its_block() {
        let registry = registry();
        let entry = registry.get("greetings.hello").unwrap();
        assert_eq!(entry.versions(), &["v1", "v2"]);
        let info = entry.block_info().unwrap();
        assert_eq!(info.exclusive_flag, Some("primary"));
        let spec = spec("greeter", "greetings.hello");
        let mut properties = Properties::new().with("primary", "true");
        info.defaults(&mut properties, &spec);
        let reader = MetadataReader::new(&properties);
        let configured = entry.configure(&reader, &spec);
        assert!(reader.errors().is_empty(), "{:?}", reader.errors());
        assert!(reader.unread().is_empty(), "{:?}", reader.unread());
        let live = configured.build().await.unwrap();
        let mut store = ComponentStore::default();
        assert!(!store.has::<Greetings>());
        store.install("greeter", "greetings.hello", "v1", live);
        assert!(store.has::<Greetings>());
        let (name, greeter, primary) = store.get::<Greetings>("greeter").unwrap();
        assert_eq!(
            (name.as_str(), greeter.greet(), *primary),
            ("greeter", "hello app".into(), true)
        );
        assert!(store.get::<Greetings>("other").is_none());
        assert_eq!(store.all::<Greetings>().count(), 1);
        assert_eq!(store.infos()[0].capabilities, vec!["PRIMARY".to_owned()]);
        assert!(store.secret_source("greeter").is_none());
    }

    #[tokio::test]
    async fn a_build_failure_is_the_component_error() {
        let registry = registry();
        let properties = Properties::new().with("who", "");
        let reader = MetadataReader::new(&properties);
        let configured = registry
            .get("greetings.alias")
            .unwrap()
            .configure(&reader, &spec("x", "greetings.alias"));
        let err = configured.build().await.err().unwrap();
        assert_eq!(err.to_string(), "nobody to greet");
    }

    #[test]
    fn a_compiled_out_type_names_its_feature() {
        let registry = registry();
        let entry = registry.get("greetings.far").unwrap();
        assert_eq!(
            (entry.block, entry.compiled_out),
            ("greetings", Some("far"))
        );
        assert!(entry.block_info().is_none());
        let properties = Properties::new();
        let reader = MetadataReader::new(&properties);
        let _ = entry.configure(&reader, &spec("x", "greetings.far"));
        assert_eq!(
            reader.errors(),
            vec!["greetings.far is not compiled into this binary; build mecha with the cargo feature 'far'".to_owned()]
        );
        assert!(registry.factory::<Greetings>("greetings.far").is_none());
        assert!(registry.factory::<Greetings>("greetings.hello").is_some());
        assert_eq!(
            registry.known_types(),
            vec!["greetings.alias", "greetings.far", "greetings.hello"]
        );
        assert_eq!(
            registry
                .types()
                .iter()
                .filter(|t| t.block == "greetings")
                .count(),
            3
        );
    }

    #[test]
    #[should_panic(expected = "component type greetings.hello registered twice")]
    fn a_type_registered_twice_is_a_programming_error() {
        let mut registry = registry();
        registry.register::<Greetings>(GREETINGS_HELLO);
    }
}
