//! What every component shares: the context it is built in, and the
//! two-phase factory (pure validation, then an async build that connects).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::metadata::MetadataReader;

/// Where a component is being built.
#[derive(Clone, Debug, Default)]
pub struct ComponentContext {
    /// The component's `metadata.name`.
    pub name: String,
    pub app_id: String,
    pub namespace: Option<String>,
    /// The runtime's data directory (`--data-dir`).
    pub data_dir: PathBuf,
}

/// Builds components of one type (`state.sqlite`) for a building block whose
/// contract is `T` (such as `dyn StateStore`).
pub trait Factory<T: ?Sized>: Send + Sync {
    /// The Dapr type name, such as `state.sqlite`.
    fn type_name(&self) -> &'static str;

    /// The `spec.version`s this factory accepts; the first is the default.
    fn versions(&self) -> &'static [&'static str] {
        &["v1"]
    }

    /// Pure: reads the metadata into a typed config, recording every problem
    /// in the reader. Does no I/O, so `mecha validate` can call it.
    fn configure(
        &self,
        version: &str,
        metadata: &MetadataReader<'_>,
        ctx: &ComponentContext,
    ) -> Box<dyn Builder<T>>;
}

/// The second phase: connect and return the live component.
#[async_trait]
pub trait Builder<T: ?Sized>: Send {
    async fn build(self: Box<Self>) -> anyhow::Result<Arc<T>>;
}

/// The future [`ComponentFactory`]'s build function returns.
pub type BuildFuture<T> = crate::block::SendFuture<'static, anyhow::Result<Arc<T>>>;

/// A component type as two functions: `configure` reads the metadata into
/// a config `C` (pure: problems go to the reader), and `build` connects.
/// Components declare theirs as constants named after the type
/// (`STATE_REDIS`) and register them with the registry.
pub struct ComponentFactory<T: ?Sized + 'static, C> {
    type_name: &'static str,
    versions: &'static [&'static str],
    configure: fn(&str, &MetadataReader<'_>, &ComponentContext) -> C,
    build: fn(C) -> BuildFuture<T>,
}

impl<T: ?Sized + 'static, C> Clone for ComponentFactory<T, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized + 'static, C> Copy for ComponentFactory<T, C> {}

impl<T: ?Sized + 'static, C> ComponentFactory<T, C> {
    /// A type of version `v1` only. `configure` takes the `spec.version`,
    /// the metadata and the context.
    pub const fn new(
        type_name: &'static str,
        configure: fn(&str, &MetadataReader<'_>, &ComponentContext) -> C,
        build: fn(C) -> BuildFuture<T>,
    ) -> Self {
        Self {
            type_name,
            versions: &["v1"],
            configure,
            build,
        }
    }

    /// The `spec.version`s it accepts; the first is the default.
    pub const fn with_versions(mut self, versions: &'static [&'static str]) -> Self {
        self.versions = versions;
        self
    }

    /// The same type under another name (an alias Dapr accepts too).
    pub const fn named(mut self, type_name: &'static str) -> Self {
        self.type_name = type_name;
        self
    }
}

impl<T: ?Sized + 'static, C: Send + 'static> Factory<T> for ComponentFactory<T, C> {
    fn type_name(&self) -> &'static str {
        self.type_name
    }

    fn versions(&self) -> &'static [&'static str] {
        self.versions
    }

    fn configure(
        &self,
        version: &str,
        metadata: &MetadataReader<'_>,
        ctx: &ComponentContext,
    ) -> Box<dyn Builder<T>> {
        Box::new(Configured {
            config: (self.configure)(version, metadata, ctx),
            build: self.build,
        })
    }
}

struct Configured<T: ?Sized + 'static, C> {
    config: C,
    build: fn(C) -> BuildFuture<T>,
}

#[async_trait]
impl<T: ?Sized + 'static, C: Send + 'static> Builder<T> for Configured<T, C> {
    async fn build(self: Box<Self>) -> anyhow::Result<Arc<T>> {
        (self.build)(self.config).await
    }
}
