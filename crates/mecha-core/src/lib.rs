//! Mecha's shared vocabulary. Every other crate depends on this one, and it
//! depends on no web framework, gRPC stack or database client.

pub mod address;
pub mod block;
pub mod component;
pub mod error;
pub mod host;
pub mod limits;
pub mod metadata;
pub mod names;
pub mod testing;
pub mod units;

pub use block::{
    Block, BlockInfo, ComponentInfo, ComponentSpec, ComponentStore, Registry, RuntimeSettings,
    SecretSource, TypeEntry,
};
pub use component::{BuildFuture, Builder, ComponentContext, ComponentFactory, Factory};
pub use error::{ApiError, GrpcCode};
pub use host::{HostStatus, Service};
pub use metadata::{MetadataReader, Properties};
