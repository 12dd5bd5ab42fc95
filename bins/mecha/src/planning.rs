//! The checks a runtime makes before it connects to anything, shared by
//! `mecha sidecar` and `mecha validate`, so that `validate` reports exactly
//! what the sidecar would refuse: resources loaded (or the embedded
//! defaults), subscriptions checked, the Configuration read, components
//! planned against the registry, secret scopes, name resolution planned.

use std::path::{Path, PathBuf};

use mecha_core::{Builder, RuntimeSettings};
use mecha_nameresolution::NameResolver;
use mecha_resources::{
    Configuration, LoadOptions, Report, SkippedResource, Subscription, load_configuration,
    load_resources,
};
use mecha_runtime::{Plan, RuntimeInfo, plan};

use crate::nameresolution::plan_name_resolution;
use crate::subscriptions::check_subscriptions;
use mecha_secrets::SecretScopes;

/// What the runtime reads from disk, checked on its own: resources and the
/// Configuration (before the runtime's description, which needs it).
pub struct Inputs {
    components: Vec<mecha_resources::Component>,
    pub subscriptions: Vec<Subscription>,
    pub skipped: Vec<SkippedResource>,
    pub configuration: Configuration,
    config_file: Option<PathBuf>,
    pub report: Report,
    /// Whether the embedded scheduler store was added to resources that
    /// declare none.
    pub embedded_scheduler: bool,
}

/// Where the components come from.
pub enum Source<'a> {
    /// The resource folders given (`--resources-path`), and the data
    /// directory (for the embedded scheduler store, when they declare none).
    Paths(&'a [PathBuf], &'a Path),
    /// The embedded defaults in the data directory.
    Defaults(&'a Path),
}

impl Inputs {
    /// Loads the resources and the Configuration, reporting every problem.
    pub fn load(source: Source<'_>, options: &LoadOptions, config: &[PathBuf]) -> Self {
        let mut report = Report::default();
        let mut embedded_scheduler = false;
        let (components, subscriptions, skipped) = match source {
            Source::Defaults(data_dir) => (
                crate::defaults::components(data_dir),
                Vec::new(),
                Vec::new(),
            ),
            Source::Paths(paths, data_dir) => {
                let (mut resources, load_report) = load_resources(paths, options);
                report.merge(load_report);
                report.merge(check_subscriptions(
                    &resources.subscriptions,
                    &resources.components,
                ));
                let schedulers: Vec<&mecha_resources::Component> = resources
                    .components
                    .iter()
                    .filter(|c| c.type_name.starts_with("scheduler."))
                    .collect();
                match schedulers.as_slice() {
                    [] => {
                        resources
                            .components
                            .push(crate::defaults::scheduler(data_dir));
                        embedded_scheduler = true;
                    }
                    [_] => {}
                    [_, second, ..] => report.error(
                        second.file.clone(),
                        Some(second.name.clone()),
                        format!(
                            "only one scheduler store may be defined; found {}",
                            schedulers
                                .iter()
                                .map(|c| c.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                }
                (
                    resources.components,
                    resources.subscriptions,
                    resources.skipped,
                )
            }
        };
        let (configuration, config_report) = load_configuration(config);
        report.merge(config_report);
        Self {
            components,
            subscriptions,
            skipped,
            configuration,
            config_file: config.first().cloned(),
            report,
            embedded_scheduler,
        }
    }

    /// Plans the components (with the Configuration's secret scopes) and
    /// name resolution for the runtime `info` describes.
    pub fn plan(self, info: &RuntimeInfo) -> Planned {
        let mut report = self.report;
        let registry = mecha_catalog::registry();
        let mut settings = RuntimeSettings::default();
        settings.insert(SecretScopes(
            self.configuration
                .secret_scopes
                .iter()
                .map(|scope| {
                    let secret_scope = mecha_secrets::SecretScope {
                        deny_by_default: scope.denies_by_default(),
                        allowed: scope.allowed_secrets.iter().cloned().collect(),
                        denied: scope.denied_secrets.iter().cloned().collect(),
                    };
                    (scope.store_name.clone(), secret_scope)
                })
                .collect(),
        ));
        let (components, plan_report) = plan(&self.components, &registry, info, settings);
        report.merge(plan_report);
        let (name_resolution, nr_report) = plan_name_resolution(
            self.configuration.name_resolution.as_ref(),
            self.config_file,
            &registry,
            info,
        );
        report.merge(nr_report);
        Planned {
            components,
            name_resolution,
            subscriptions: self.subscriptions,
            report,
        }
    }
}

/// The outcome of planning: what to build, and every problem found.
pub struct Planned {
    pub components: Plan,
    pub name_resolution: Option<Box<dyn Builder<dyn NameResolver>>>,
    pub subscriptions: Vec<Subscription>,
    pub report: Report,
}
