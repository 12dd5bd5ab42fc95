//! Choosing and checking the name resolver: `spec.nameResolution` of the
//! Configuration, or by default an address book in the data directory
//! (`nameresolution.sqlite`), reliable for every runtime on one host. This
//! default is a deliberate difference from daprd, whose self-hosted default
//! is mDNS.

use std::path::PathBuf;

use mecha_core::{Builder, MetadataReader, Properties};
use mecha_nameresolution::{NameResolutionBlock, NameResolver};
use mecha_resources::{NameResolutionSpec, Report};

use mecha_runtime::{Registry, RuntimeInfo};

const KIND: &str = <NameResolutionBlock as mecha_core::Block>::KIND;

/// The file name of the default address book in the data directory.
pub const DEFAULT_ADDRESS_BOOK_FILE: &str = "nameresolution.db";

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
            let db = info.data_dir.join(DEFAULT_ADDRESS_BOOK_FILE);
            let properties = Properties::new().with("connectionString", &db.to_string_lossy());
            ("sqlite".to_owned(), properties)
        }
    };
    let label = Some(format!("nameResolution '{component}'"));
    // By `nameresolution.x`, or by the short name `Configuration` uses.
    let entry = [component.clone(), format!("{KIND}.{component}")]
        .iter()
        .find_map(|name| registry.get(name))
        .filter(|entry| entry.block == KIND);
    let factory = entry.and_then(|e| registry.factory::<NameResolutionBlock>(e.type_name));
    let Some(factory) = factory else {
        if spec.is_some() {
            let problem = entry
                .and_then(|e| e.compiled_out_problem())
                .unwrap_or_else(|| {
                    let known: Vec<&str> = registry
                        .types()
                        .iter()
                        .filter(|t| t.block == KIND && t.compiled_out.is_none())
                        .map(|t| t.type_name)
                        .collect();
                    format!(
                        "unknown name resolution component; known: {}",
                        known.join(", ")
                    )
                });
            report.error(&file, label, problem);
        }
        return (None, report);
    };
    let version = spec
        .map(|s| s.version.as_str())
        .filter(|v| !v.is_empty())
        .unwrap_or("v1");
    let reader = MetadataReader::new(&properties);
    let ctx = info.component_context(&component);
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
