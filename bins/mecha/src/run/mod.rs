//! `mecha run`: starts apps with their runtimes, for development, as
//! `dapr run` does: one app from flags, or several from a run file (`-f`, in
//! the shape of Dapr's multi-app run file). Both log streams are prefixed;
//! Ctrl-C (or `mecha stop`) stops everything cleanly; when an app exits its
//! runtime is stopped and, for a single app, its exit code is passed on.

mod records;
mod runfile;
mod supervise;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

pub use records::{ListArgs, StopArgs, list, stop};

/// One app and how to run its runtime.
#[derive(Clone, Debug, Default)]
pub struct AppSpec {
    pub app_id: String,
    pub app_port: Option<u16>,
    pub app_protocol: Option<String>,
    pub http_port: Option<u16>,
    pub grpc_port: Option<u16>,
    pub metrics_port: Option<u16>,
    pub resources: Vec<PathBuf>,
    pub config: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub command: Vec<String>,
    /// The app's working directory.
    pub dir: Option<PathBuf>,
    /// More `mecha sidecar` flags.
    pub sidecar_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A run file of several apps (Dapr's multi-app run file format).
    #[arg(short = 'f', long = "run-file", conflicts_with_all = ["app_id", "command"])]
    pub run_file: Option<PathBuf>,
    /// The app's id.
    #[arg(short = 'a', long)]
    pub app_id: Option<String>,
    /// The port the app listens on.
    #[arg(short = 'p', long)]
    pub app_port: Option<u16>,
    /// http, https, h2c, grpc or grpcs.
    #[arg(short = 'P', long)]
    pub app_protocol: Option<String>,
    /// The runtime's HTTP port (default: a free one).
    #[arg(short = 'H', long)]
    pub dapr_http_port: Option<u16>,
    /// The runtime's gRPC port (default: a free one).
    #[arg(short = 'G', long)]
    pub dapr_grpc_port: Option<u16>,
    /// The runtime's metrics port (default: a free one).
    #[arg(short = 'M', long)]
    pub metrics_port: Option<u16>,
    /// Folders of resource files (default: the embedded defaults).
    #[arg(short = 'd', long, visible_alias = "components-path")]
    pub resources_path: Vec<PathBuf>,
    /// A Configuration file.
    #[arg(short = 'c', long)]
    pub config: Option<PathBuf>,
    /// The data directory (default $XDG_DATA_HOME/mecha).
    #[arg(long, env = "MECHA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long)]
    pub log_level: Option<String>,
    #[arg(long)]
    pub app_max_concurrency: Option<i64>,
    #[arg(long)]
    pub enable_app_health_check: bool,
    #[arg(long)]
    pub app_health_check_path: Option<String>,
    #[arg(long)]
    pub max_body_size: Option<String>,
    /// The app's command, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

impl RunArgs {
    fn spec(&self) -> anyhow::Result<AppSpec> {
        let app_id = self
            .app_id
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--app-id is required (or a run file with -f)"))?;
        let mut sidecar_args = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                sidecar_args.push(format!("--{name}"));
                sidecar_args.push(value);
            }
        };
        flag("log-level", self.log_level.clone());
        flag(
            "app-max-concurrency",
            self.app_max_concurrency.map(|n| n.to_string()),
        );
        flag("app-health-check-path", self.app_health_check_path.clone());
        flag("max-body-size", self.max_body_size.clone());
        if self.enable_app_health_check {
            sidecar_args.push("--enable-app-health-check".into());
        }
        Ok(AppSpec {
            app_id,
            app_port: self.app_port,
            app_protocol: self.app_protocol.clone(),
            http_port: self.dapr_http_port,
            grpc_port: self.dapr_grpc_port,
            metrics_port: self.metrics_port,
            resources: self.resources_path.clone(),
            config: self.config.clone(),
            env: vec![],
            command: self.command.clone(),
            dir: None,
            sidecar_args,
        })
    }
}

pub fn main(args: RunArgs) -> ExitCode {
    let result = (|| -> anyhow::Result<(Vec<AppSpec>, Option<PathBuf>)> {
        match &args.run_file {
            Some(file) => Ok((runfile::load(file)?, Some(file.clone()))),
            None => Ok((vec![args.spec()?], None)),
        }
    })();
    let (specs, run_file) = match result {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let data_dir = crate::data_dir(args.data_dir.clone());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start the async runtime");
    match tokio.block_on(supervise::run(specs, data_dir, run_file)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
