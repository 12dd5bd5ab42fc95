//! Dapr resource files: every YAML file of the resources paths, multi-document
//! files included, parsed into typed resources. Loading is pure (it reads
//! files and nothing else) and reports every problem at once, naming the file
//! and the resource, so `mecha validate` and the runtime share it.

mod configuration;
mod loader;
mod report;
mod resources;

pub use configuration::{
    Configuration, FeatureFlag, NameResolutionSpec, SecretScopeSpec, load_configuration,
};
pub use loader::{LoadOptions, load_resources, parse_documents};
pub use report::{Problem, Report};
pub use resources::{
    BulkSubscribe, Component, MetadataItem, MetadataSource, Resources, RouteRule, SkippedResource,
    Subscription,
};
