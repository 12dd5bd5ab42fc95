//! `mecha validate`: the runtime's checks of resource files, without
//! connecting to anything.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mecha_resources::LoadOptions;
use mecha_runtime::RuntimeInfo;

use crate::planning::{Inputs, Source};

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
    let data_dir = crate::data_dir(None);
    let inputs = Inputs::load(
        Source::Paths(&args.paths, &data_dir),
        &options,
        &args.config,
    );
    for skipped in &inputs.skipped {
        println!(
            "skipped: {}: {} '{}': {}",
            skipped.file.display(),
            skipped.kind,
            skipped.name,
            skipped.reason
        );
    }
    let info = RuntimeInfo {
        app_id: args.app_id.unwrap_or_default(),
        namespace: options.namespace,
        data_dir,
        enabled_features: inputs.configuration.enabled_features(),
        ..RuntimeInfo::default()
    };
    let embedded = usize::from(inputs.embedded_scheduler);
    // Exactly the sidecar's planning: what it would refuse is reported.
    let planned = inputs.plan(&info);
    let report = planned.report;
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
    for error in &report.errors {
        println!("error: {error}");
    }
    if report.is_ok() {
        println!(
            "ok: {} component(s) and {} subscription(s) valid",
            planned.components.len() - embedded,
            planned.subscriptions.len()
        );
        ExitCode::SUCCESS
    } else {
        println!("{} error(s)", report.errors.len());
        ExitCode::FAILURE
    }
}
