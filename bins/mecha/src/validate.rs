//! `mecha validate`: the runtime's checks of resource files, without
//! connecting to anything.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mecha_config::{LoadOptions, load_configuration, load_resources};
use mecha_runtime::{RuntimeInfo, check_subscriptions, plan};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Folders (or files) of resource YAML.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Check as this app would load them (components scoped to other apps
    /// are skipped). Without it every component is checked.
    #[arg(long)]
    pub app_id: Option<String>,
    /// A Configuration file to check too.
    #[arg(long)]
    pub config: Vec<PathBuf>,
}

pub fn main(args: ValidateArgs) -> ExitCode {
    let options = LoadOptions {
        app_id: args.app_id.clone(),
        namespace: std::env::var("NAMESPACE").ok(),
    };
    let (resources, mut report) = load_resources(&args.paths, &options);
    let (_, config_report) = load_configuration(&args.config);
    report.merge(config_report);
    let info = RuntimeInfo {
        app_id: args.app_id.unwrap_or_default(),
        namespace: options.namespace,
        data_dir: crate::data_dir(None),
        ..RuntimeInfo::default()
    };
    let (planned, plan_report) = plan(&resources.components, &mecha_registry::registry(), &info);
    report.merge(plan_report);
    report.merge(check_subscriptions(
        &resources.subscriptions,
        &resources.components,
    ));
    for skipped in &resources.skipped {
        println!(
            "skipped: {}: {} '{}': {}",
            skipped.file.display(),
            skipped.kind,
            skipped.name,
            skipped.reason
        );
    }
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
    for error in &report.errors {
        println!("error: {error}");
    }
    if report.is_ok() {
        println!(
            "ok: {} component(s) and {} subscription(s) valid",
            planned.len(),
            resources.subscriptions.len()
        );
        ExitCode::SUCCESS
    } else {
        println!("{} error(s)", report.errors.len());
        ExitCode::FAILURE
    }
}
