//! Choosing and checking the name resolver: `spec.nameResolution` of the
//! Configuration, or by default a registry in the data directory
//! (`nameresolution.sqlite`), reliable for every runtime on one host. This
//! default is a deliberate difference from daprd, whose self-hosted default
//! is mDNS.

use std::path::PathBuf;

use mecha_config::{NameResolutionSpec, Report};
use mecha_core::{Builder, ComponentContext, MetadataReader, Properties};
use mecha_nameresolution::{NameResolutionBlock, NameResolver};

use crate::{Registry, RuntimeInfo};

const KIND: &str = <NameResolutionBlock as mecha_core::Block>::KIND;

/// The file name of the default registry in the data directory.
pub const DEFAULT_REGISTRY_FILE: &str = "nameresolution.db";

/// Validates the name resolution settings; `None` (with no error) when this
/// build has no resolver at all.
pub fn plan_name_resolution(
    spec: Option<&NameResolutionSpec>,
    config_file: Option<PathBuf>,
    registry: &Registry,
    info: &RuntimeInfo,
) -> (Option<Box<dyn Builder<dyn NameResolver>>>, Report) {
    let mut report = Report::default();
    let file = config_file.unwrap_or_else(|| PathBuf::from("<configuration>"));
    let (component, properties) = match spec.filter(|s| !s.component.is_empty()) {
        Some(spec) => (
            spec.component.clone(),
            Properties(spec.configuration.clone()),
        ),
        None => {
            let db = info.data_dir.join(DEFAULT_REGISTRY_FILE);
            let properties = Properties::new().with("connectionString", &db.to_string_lossy());
            ("sqlite".to_owned(), properties)
        }
    };
    let label = Some(format!("nameResolution '{component}'"));
    // By `nameresolution.x`, or by the short name `Configuration` uses.
    let factory = registry
        .factory::<NameResolutionBlock>(&component)
        .or_else(|| registry.factory::<NameResolutionBlock>(&format!("{KIND}.{component}")));
    let Some(factory) = factory else {
        let stub = [component.clone(), format!("{KIND}.{component}")]
            .into_iter()
            .find_map(|name| {
                registry
                    .get(&name)
                    .and_then(|t| t.compiled_out.map(|f| (t.type_name, f)))
            });
        if let (Some(_), Some((type_name, feature))) = (spec, stub) {
            report.error(
                &file,
                label,
                format!("{type_name} is not compiled into this binary; build mecha with the cargo feature '{feature}'"),
            );
        } else if spec.is_some() {
            report.error(
                &file,
                label,
                format!(
                    "unknown name resolution component; known: {}",
                    registry
                        .types()
                        .iter()
                        .filter(|t| t.block == KIND && t.compiled_out.is_none())
                        .map(|t| t.type_name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        return (None, report);
    };
    let version = spec
        .map(|s| s.version.as_str())
        .filter(|v| !v.is_empty())
        .unwrap_or("v1");
    let reader = MetadataReader::new(&properties);
    let ctx = ComponentContext {
        name: component.clone(),
        app_id: info.app_id.clone(),
        namespace: info.namespace.clone(),
        data_dir: info.data_dir.clone(),
    };
    let builder = factory.configure(version, &reader, &ctx);
    for error in reader.errors() {
        report.error(&file, label.clone(), error);
    }
    for name in reader.unread() {
        report.warning(
            &file,
            label.clone(),
            format!("unknown configuration key '{name}'; ignored"),
        );
    }
    (Some(builder), report)
}
