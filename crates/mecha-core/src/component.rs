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

    /// For the stub of a type this binary was built without: the cargo
    /// feature that builds it. `None` for a real component.
    fn compiled_out(&self) -> Option<&'static str> {
        None
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
