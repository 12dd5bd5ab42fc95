//! `mecha sidecar` flags: every daprd flag, with daprd's defaults, spelled
//! `--flag` or (as Go programs accept) `-flag`.

use std::path::PathBuf;

use clap::{ArgAction, Args, CommandFactory};

/// daprd's flags. Those Mecha does not implement yet are accepted and
/// reported once in the log (see [`SidecarArgs::unsupported`]).
#[derive(Args, Debug, Clone)]
pub struct SidecarArgs {
    /// The app's id.
    #[arg(long, default_value = "")]
    pub app_id: String,
    /// The port the app listens on (none: no app channel).
    #[arg(long)]
    pub app_port: Option<u16>,
    /// http, https, h2c, grpc or grpcs.
    #[arg(long, default_value = "http", value_parser = ["http", "https", "h2c", "grpc", "grpcs"])]
    pub app_protocol: String,
    /// The address the app listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub app_channel_address: String,
    /// The most concurrent calls to the app (-1: unlimited).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub app_max_concurrency: i64,
    #[arg(long, num_args = 0..=1, default_value = "false", default_missing_value = "true", action = ArgAction::Set)]
    pub enable_app_health_check: bool,
    #[arg(long, default_value = "/healthz")]
    pub app_health_check_path: String,
    /// Seconds between app health probes.
    #[arg(long, default_value_t = 5)]
    pub app_health_probe_interval: u64,
    /// Milliseconds before an app health probe times out.
    #[arg(long, default_value_t = 500)]
    pub app_health_probe_timeout: u64,
    /// Failed probes before the app is unhealthy.
    #[arg(long, default_value_t = 3)]
    pub app_health_threshold: u32,
    /// The Dapr HTTP API port.
    #[arg(long, default_value_t = 3500)]
    pub dapr_http_port: u16,
    /// The Dapr gRPC API port.
    #[arg(long, default_value_t = 50001)]
    pub dapr_grpc_port: u16,
    /// The runtime-to-runtime gRPC port.
    #[arg(long)]
    pub dapr_internal_grpc_port: Option<u16>,
    /// Addresses the API listens on (comma-separated; default: all).
    #[arg(long)]
    pub dapr_listen_addresses: Option<String>,
    /// The Prometheus metrics port.
    #[arg(long, default_value_t = 9090)]
    pub metrics_port: u16,
    #[arg(long, default_value = "0.0.0.0")]
    pub metrics_listen_address: String,
    #[arg(long, num_args = 0..=1, default_value = "true", default_missing_value = "true", action = ArgAction::Set)]
    pub enable_metrics: bool,
    /// A folder of resource files (repeatable). None: the embedded defaults.
    #[arg(long, visible_alias = "components-path", action = ArgAction::Append)]
    pub resources_path: Vec<PathBuf>,
    /// A Configuration file (repeatable).
    #[arg(long, action = ArgAction::Append)]
    pub config: Vec<PathBuf>,
    #[arg(long, default_value = "info", value_parser = ["debug", "info", "warn", "error", "fatal"])]
    pub log_level: String,
    #[arg(long, num_args = 0..=1, default_value = "false", default_missing_value = "true", action = ArgAction::Set)]
    pub log_as_json: bool,
    /// The largest request body (a quantity such as 4Mi).
    #[arg(long, default_value = "4Mi")]
    pub max_body_size: String,
    /// Request bodies the API holds at once, in all (a quantity such as
    /// 32Mi; at least one body of --max-body-size). A body beyond it waits
    /// for room (--request-memory-wait), then gets 429 (gRPC
    /// RESOURCE_EXHAUSTED).
    #[arg(long, env = "MECHA_REQUEST_MEMORY_BUDGET", default_value = "32Mi")]
    pub request_memory_budget: String,
    /// How long a body waits for room in --request-memory-budget (a Go
    /// duration).
    #[arg(long, env = "MECHA_REQUEST_MEMORY_WAIT", default_value = "30s")]
    pub request_memory_wait: String,
    /// Deprecated: the largest request body in MB.
    #[arg(long)]
    pub dapr_http_max_request_size: Option<u64>,
    /// Placement service addresses (comma-separated).
    #[arg(long)]
    pub placement_host_address: Option<String>,
    /// standalone or kubernetes.
    #[arg(long, default_value = "standalone", value_parser = ["standalone", "kubernetes"])]
    pub mode: String,
    /// Seconds to drain in-flight work on shutdown.
    #[arg(long, default_value_t = 5)]
    pub dapr_graceful_shutdown_seconds: u64,
    /// Mecha's data directory (default $XDG_DATA_HOME/mecha).
    #[arg(long, env = "MECHA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Threads that run the runtime's work (1: a single thread in all).
    /// Default: MECHA_WORKER_THREADS when it holds a number from 1 to 1024,
    /// else 1.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,

    // daprd flags accepted but not implemented yet.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub app_ssl: Option<String>,
    #[arg(long, hide = true)]
    pub app_binding_options_timeout: Option<String>,
    /// The address the runtime-to-runtime port listens on (default:
    /// loopback when name resolution is the registry in the data
    /// directory, every interface otherwise).
    #[arg(long)]
    pub dapr_internal_grpc_listen_address: Option<String>,
    #[arg(long, hide = true)]
    pub dapr_public_port: Option<String>,
    #[arg(long, hide = true)]
    pub dapr_public_listen_address: Option<String>,
    #[arg(long, hide = true)]
    pub profile_port: Option<String>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub enable_profiling: Option<String>,
    #[arg(long, hide = true)]
    pub scheduler_host_address: Option<String>,
    #[arg(long, hide = true)]
    pub scheduler_job_streams: Option<String>,
    #[arg(long, hide = true)]
    pub actors_disseminate_timeout: Option<String>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub enable_mtls: Option<String>,
    #[arg(long, hide = true)]
    pub sentry_address: Option<String>,
    #[arg(long, hide = true)]
    pub control_plane_address: Option<String>,
    #[arg(long, hide = true)]
    pub control_plane_trust_domain: Option<String>,
    #[arg(long, hide = true)]
    pub control_plane_namespace: Option<String>,
    #[arg(long, hide = true)]
    pub sentry_request_jwt_audiences: Option<String>,
    #[arg(long, hide = true)]
    pub allowed_origins: Option<String>,
    #[arg(long, hide = true)]
    pub read_buffer_size: Option<String>,
    #[arg(long, hide = true)]
    pub dapr_http_read_buffer_size: Option<String>,
    #[arg(long, hide = true)]
    pub unix_domain_socket: Option<String>,
    #[arg(long, hide = true)]
    pub dapr_block_shutdown_duration: Option<String>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub enable_api_logging: Option<String>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub disable_builtin_k8s_secret_store: Option<String>,
    #[arg(long, hide = true)]
    pub disable_init_endpoints: Option<String>,
    #[arg(long, hide = true)]
    pub hot_reload_reconcile_interval: Option<String>,
    #[arg(long, hide = true)]
    pub log_file: Option<String>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub wait: Option<String>,
    #[arg(long, hide = true)]
    pub actors_service: Option<String>,
    #[arg(long, hide = true)]
    pub reminders_service: Option<String>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub build_info: Option<String>,
}

impl SidecarArgs {
    /// The daprd flags given that Mecha accepts but does not implement yet.
    pub fn unsupported(&self) -> Vec<&'static str> {
        let given = [
            ("--app-ssl", self.app_ssl.is_some()),
            (
                "--app-binding-options-timeout",
                self.app_binding_options_timeout.is_some(),
            ),
            ("--dapr-public-port", self.dapr_public_port.is_some()),
            (
                "--dapr-public-listen-address",
                self.dapr_public_listen_address.is_some(),
            ),
            ("--profile-port", self.profile_port.is_some()),
            ("--enable-profiling", self.enable_profiling.is_some()),
            (
                "--scheduler-host-address",
                self.scheduler_host_address.is_some(),
            ),
            (
                "--scheduler-job-streams",
                self.scheduler_job_streams.is_some(),
            ),
            (
                "--actors-disseminate-timeout",
                self.actors_disseminate_timeout.is_some(),
            ),
            ("--sentry-address", self.sentry_address.is_some()),
            (
                "--control-plane-address",
                self.control_plane_address.is_some(),
            ),
            (
                "--control-plane-trust-domain",
                self.control_plane_trust_domain.is_some(),
            ),
            (
                "--control-plane-namespace",
                self.control_plane_namespace.is_some(),
            ),
            (
                "--sentry-request-jwt-audiences",
                self.sentry_request_jwt_audiences.is_some(),
            ),
            ("--allowed-origins", self.allowed_origins.is_some()),
            ("--read-buffer-size", self.read_buffer_size.is_some()),
            (
                "--dapr-http-read-buffer-size",
                self.dapr_http_read_buffer_size.is_some(),
            ),
            ("--unix-domain-socket", self.unix_domain_socket.is_some()),
            (
                "--dapr-block-shutdown-duration",
                self.dapr_block_shutdown_duration.is_some(),
            ),
            ("--enable-api-logging", self.enable_api_logging.is_some()),
            (
                "--disable-builtin-k8s-secret-store",
                self.disable_builtin_k8s_secret_store.is_some(),
            ),
            (
                "--disable-init-endpoints",
                self.disable_init_endpoints.is_some(),
            ),
            (
                "--hot-reload-reconcile-interval",
                self.hot_reload_reconcile_interval.is_some(),
            ),
            ("--log-file", self.log_file.is_some()),
            ("--wait", self.wait.is_some()),
            ("--actors-service", self.actors_service.is_some()),
            ("--reminders-service", self.reminders_service.is_some()),
            ("--build-info", self.build_info.is_some()),
        ];
        given
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| name)
            .collect()
    }
}

/// Rewrites Go-style `-flag` and `-flag=value` into `--flag` for every long
/// flag of the CLI, so daprd command lines work unchanged. Values such as
/// `-1` are left alone.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let command = crate::Cli::command();
    let mut long_names: Vec<String> = Vec::new();
    collect_long_names(&command, &mut long_names);
    args.into_iter()
        .map(|arg| {
            let Some(rest) = arg.strip_prefix('-') else {
                return arg;
            };
            if rest.starts_with('-') {
                return arg;
            }
            let name = rest.split_once('=').map_or(rest, |(name, _)| name);
            if long_names.iter().any(|known| known == name) {
                format!("-{arg}")
            } else {
                arg
            }
        })
        .collect()
}

fn collect_long_names(command: &clap::Command, out: &mut Vec<String>) {
    for arg in command.get_arguments() {
        if let Some(long) = arg.get_long() {
            out.push(long.to_owned());
        }
        if let Some(aliases) = arg.get_all_aliases() {
            out.extend(aliases.into_iter().map(str::to_owned));
        }
    }
    for sub in command.get_subcommands() {
        collect_long_names(sub, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    fn sidecar(args: &[&str]) -> SidecarArgs {
        let argv = normalize_args(
            ["mecha", "sidecar"]
                .iter()
                .chain(args)
                .map(|s| (*s).to_owned()),
        );
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Sidecar(args) => *args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_are_daprds() {
        let args = sidecar(&[]);
        assert_eq!(args.dapr_http_port, 3500);
        assert_eq!(args.dapr_grpc_port, 50001);
        assert_eq!(args.metrics_port, 9090);
        assert_eq!(args.app_protocol, "http");
        assert_eq!(args.app_channel_address, "127.0.0.1");
        assert_eq!(args.app_max_concurrency, -1);
        assert_eq!(args.max_body_size, "4Mi");
        assert_eq!(args.app_health_check_path, "/healthz");
        assert!(args.enable_metrics);
        assert!(!args.log_as_json);
        assert!(args.unsupported().is_empty());
    }

    #[test]
    fn go_style_single_dash_flags() {
        let args = sidecar(&[
            "-app-id",
            "a",
            "-dapr-http-port=3600",
            "--app-max-concurrency",
            "-1",
            "-components-path",
            "/c",
            "--resources-path",
            "/r",
            "-log-as-json",
            "-enable-app-health-check=true",
            "-enable-mtls",
            "-sentry-address",
            "x:1",
        ]);
        assert_eq!(args.app_id, "a");
        assert_eq!(args.dapr_http_port, 3600);
        assert_eq!(args.app_max_concurrency, -1);
        assert_eq!(
            args.resources_path,
            vec![PathBuf::from("/c"), PathBuf::from("/r")]
        );
        assert!(args.log_as_json);
        assert!(args.enable_app_health_check);
        assert_eq!(args.enable_mtls.as_deref(), Some("true"));
        assert_eq!(args.unsupported(), vec!["--sentry-address"]);
    }

    #[test]
    fn unknown_flags_are_errors() {
        let argv = normalize_args(["mecha", "sidecar", "--no-such-flag"].map(String::from));
        assert!(Cli::try_parse_from(argv).is_err());
        let argv = normalize_args(["mecha", "sidecar", "--app-protocol", "ftp"].map(String::from));
        assert!(Cli::try_parse_from(argv).is_err());
    }
}
