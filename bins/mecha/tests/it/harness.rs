//! Starts the real `mecha` binary for a test, on free ports and a temporary
//! data directory, and stops it (killing if needed) when dropped.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mecha_proto::runtime::dapr_client::DaprClient;
use tonic::transport::Channel;

pub const MECHA: &str = env!("CARGO_BIN_EXE_mecha");

/// A free TCP port on loopback, from a range below the kernel's ephemeral
/// ports (so no port the OS hands out on its own can take it meanwhile),
/// never the same twice in one test process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 100) as u16 * 100;
    let _ = NEXT.compare_exchange(0, base, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "ran out of test ports");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A folder of resource files for one test.
pub struct Resources {
    pub dir: tempfile::TempDir,
}

impl Resources {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn file(self, name: &str, yaml: &str) -> Self {
        std::fs::write(self.dir.path().join(name), yaml).unwrap();
        self
    }

    /// A `Component` of `type_name` with the given metadata.
    pub fn component(self, name: &str, type_name: &str, metadata: &[(&str, &str)]) -> Self {
        let mut yaml = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: {type_name}\n  version: v1\n  metadata:\n"
        );
        for (key, value) in metadata {
            yaml.push_str(&format!("  - name: {key}\n    value: \"{value}\"\n"));
        }
        self.file(&format!("{name}.yaml"), &yaml)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A Configuration file in `dir` that makes name resolution mDNS; returns
/// its path, for `--config`.
pub fn mdns_configuration(dir: &Path) -> PathBuf {
    let config = dir.join("mdns.yaml");
    std::fs::write(
        &config,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: lan\nspec:\n  nameResolution:\n    component: mdns\n",
    )
    .unwrap();
    config
}

/// Options for one sidecar.
pub struct Options {
    pub app_id: String,
    pub resources: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub wait_healthy: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            app_id: "e2e-app".into(),
            resources: None,
            data_dir: None,
            env: vec![],
            args: vec![],
            wait_healthy: true,
        }
    }
}

/// A running `mecha sidecar`.
pub struct Sidecar {
    pub child: Option<Child>,
    pub http_port: u16,
    pub grpc_port: u16,
    pub metrics_port: u16,
    pub data_dir: PathBuf,
    _temp: tempfile::TempDir,
    _resources: Option<Resources>,
    log: PathBuf,
}

impl Sidecar {
    pub fn start(options: Options) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().join("data"));
        let (http_port, grpc_port, metrics_port) = (free_port(), free_port(), free_port());
        let log = temp.path().join("sidecar.log");
        // MECHA_TEST_BINARY runs the sidecar tests on another build (such
        // as the release one, to measure its memory).
        let binary = std::env::var_os("MECHA_TEST_BINARY").unwrap_or_else(|| MECHA.into());
        let mut command = Command::new(binary);
        command
            .args(["sidecar", "--app-id", &options.app_id])
            .args(["--dapr-http-port", &http_port.to_string()])
            .args(["--dapr-grpc-port", &grpc_port.to_string()])
            .args(["--metrics-port", &metrics_port.to_string()])
            .args(["--dapr-listen-addresses", "127.0.0.1"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&options.args)
            .env_remove("DAPR_API_TOKEN")
            .env_remove("MECHA_DATA_DIR")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(resources) = &options.resources {
            command.arg("--resources-path").arg(resources);
        }
        let child = command.spawn().expect("spawn mecha");
        let mut sidecar = Self {
            child: Some(child),
            http_port,
            grpc_port,
            metrics_port,
            data_dir,
            _temp: temp,
            _resources: None,
            log,
        };
        if options.wait_healthy {
            sidecar.wait_healthy();
        }
        sidecar
    }

    /// Starts a sidecar on the given resources folder, which it keeps.
    pub fn with_resources(resources: Resources) -> Self {
        Self::start_with(resources, Options::default())
    }

    /// Starts a sidecar with options, on a resources folder it keeps.
    pub fn start_with(resources: Resources, options: Options) -> Self {
        let mut sidecar = Self::start(Options {
            resources: Some(resources.path().to_owned()),
            ..options
        });
        sidecar._resources = Some(resources);
        sidecar
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub fn logs(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Waits until `/v1.0/healthz` answers 204.
    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mecha exited early ({status}):\n{}", self.logs());
            }
            if http_status(&self.http("/v1.0/healthz")) == Some(204) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mecha never became healthy:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A gRPC channel to the API port.
    pub async fn channel(&self) -> Channel {
        channel(self.grpc_port)
            .await
            .expect("connect to the gRPC API")
    }

    /// A client of the `Dapr` service.
    pub async fn grpc(&self) -> DaprClient<Channel> {
        DaprClient::new(self.channel().await)
    }

    /// Starts a sidecar that must fail to start; returns its logs.
    pub fn expect_failure(resources: Resources) -> String {
        let options = Options {
            wait_healthy: false,
            ..Options::default()
        };
        let mut sidecar = Self::start_with(resources, options);
        let status = sidecar.wait_exit(Duration::from_secs(10));
        assert!(!status.success(), "mecha should have refused to start");
        sidecar.logs()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "mecha did not exit:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A gRPC channel to a port on loopback.
pub async fn channel(port: u16) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("valid address")
        .connect()
        .await
}

/// A blocking GET's status, or `None` when nothing answers.
pub fn http_status(url: &str) -> Option<u16> {
    http_get(url).map(|(status, _)| status)
}

/// A blocking GET's status and body (the body whole, as it came, chunked
/// or not), or `None` when nothing answers.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let addr = url.strip_prefix("http://")?.split('/').next()?.to_owned();
    let path = &url[7 + addr.len()..];
    let mut stream = std::net::TcpStream::connect(&addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    use std::io::Write;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Runs `mecha` with arguments to completion.
pub fn run_mecha(args: &[&str]) -> std::process::Output {
    Command::new(MECHA).args(args).output().expect("run mecha")
}
