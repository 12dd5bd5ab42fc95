//! Spawning the sidecar, start-up time, and memory and CPU readings from
//! /proc.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A command for a process beside the load generator (a runtime, an app):
/// on the CPUs MECHA_BENCH_RUNTIME_CPUS lists (a taskset list), if set,
/// so the load generator can be pinned apart (`taskset -c 1 mecha-bench
/// --threads 1 ...` with `MECHA_BENCH_RUNTIME_CPUS=0`). taskset execs
/// the program: the child's pid is the program's.
pub fn command(program: &Path) -> Command {
    match std::env::var("MECHA_BENCH_RUNTIME_CPUS") {
        Ok(cpus) if !cpus.is_empty() => {
            let mut command = Command::new("taskset");
            command.args(["-c", &cpus]).arg(program);
            command
        }
        _ => Command::new(program),
    }
}

/// Fails early, and says why, when MECHA_BENCH_RUNTIME_CPUS is set and
/// `taskset` cannot run.
pub fn check_pinning() -> anyhow::Result<()> {
    let set = std::env::var("MECHA_BENCH_RUNTIME_CPUS").is_ok_and(|cpus| !cpus.is_empty());
    if set && Command::new("taskset").arg("-V").output().is_err() {
        anyhow::bail!(
            "MECHA_BENCH_RUNTIME_CPUS needs taskset (Debian: util-linux), which cannot run here"
        );
    }
    Ok(())
}

/// How the cores were shared, for the report: the load generator's
/// threads and CPUs, and the runtimes'.
pub fn cores_note(threads: usize) -> String {
    let own = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
                .map(|list| list.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let runtimes = std::env::var("MECHA_BENCH_RUNTIME_CPUS")
        .ok()
        .filter(|cpus| !cpus.is_empty())
        .unwrap_or_else(|| own.clone());
    format!(
        "Cores: the load generator ran {threads} threads on CPUs {own}; the runtimes and apps on CPUs {runtimes}."
    )
}

pub struct Sidecar {
    pub child: Child,
    pub http_port: u16,
    pub grpc_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mecha sidecar`; with `resources` (YAML text) or on the embedded
/// defaults. Returns it and the time until `/v1.0/healthz` answered 204.
pub fn spawn(mecha: &Path, resources: Option<&str>) -> anyhow::Result<(Sidecar, Duration)> {
    spawn_app(mecha, "bench", resources, &[], None)
}

/// Starts `mecha sidecar` for `app_id` with more flags, in `data_dir`
/// (shared by runtimes that must find each other) or a fresh one.
pub fn spawn_app(
    mecha: &Path,
    app_id: &str,
    resources: Option<&str>,
    args: &[String],
    data_dir: Option<&Path>,
) -> anyhow::Result<(Sidecar, Duration)> {
    let dir = tempfile::tempdir()?;
    let (http_port, grpc_port) = (free_port(), free_port());
    let mut command = command(mecha);
    command
        .args(["sidecar", "--app-id", app_id, "--log-level", "warn"])
        .args(["--dapr-http-port", &http_port.to_string()])
        .args(["--dapr-grpc-port", &grpc_port.to_string()])
        .args(["--metrics-port", &free_port().to_string()])
        .args(["--dapr-listen-addresses", "127.0.0.1"])
        .arg("--data-dir")
        .arg(data_dir.map_or_else(|| dir.path().join("data"), Path::to_path_buf))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(yaml) = resources {
        let folder: PathBuf = dir.path().join("resources");
        std::fs::create_dir_all(&folder)?;
        let yaml = yaml.replace("{dir}", &dir.path().to_string_lossy());
        std::fs::write(folder.join("components.yaml"), yaml)?;
        command.arg("--resources-path").arg(folder);
    }
    let started = Instant::now();
    let child = command.spawn()?;
    let mut sidecar = Sidecar {
        child,
        http_port,
        grpc_port,
        _dir: dir,
    };
    loop {
        if healthz(http_port) == Some(204) {
            return Ok((sidecar, started.elapsed()));
        }
        if let Some(status) = sidecar.child.try_wait()? {
            anyhow::bail!("mecha exited: {status}");
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(20),
            "mecha never became healthy"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn healthz(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// A field of /proc/<pid>/status, in kB.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of a process.
pub fn cpu_time(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // Linux reports CPU time in USER_HZ, which is 100 on every supported platform.
    Duration::from_millis(ticks * 10)
}

pub struct Startup {
    pub times: Vec<Duration>,
    /// The highest RSS seen over [`IDLE_WATCH`] after the last start.
    pub idle_rss_kb: u64,
}

/// When the idle sidecar's RSS is watched, from its start: after the
/// runtime's second release of start-up pages (15 s after it is ready),
/// through its name resolution heartbeats (every 2.5 s) and a pub/sub
/// cleanup (every 10 s).
pub const IDLE_WATCH: std::ops::Range<Duration> = Duration::from_secs(20)..Duration::from_secs(30);

/// Starts the sidecar on the embedded defaults `runs` times (a fresh data
/// directory each time), timing spawn to healthy; watches the RSS of the
/// last one while it idles, every 250 ms over [`IDLE_WATCH`], and keeps
/// the highest.
pub fn startup(mecha: &Path, runs: usize) -> anyhow::Result<Startup> {
    let mut times = Vec::with_capacity(runs);
    let mut idle_rss_kb = 0;
    for i in 0..runs {
        let started = std::time::Instant::now();
        let (sidecar, elapsed) = spawn(mecha, None)?;
        times.push(elapsed);
        if i + 1 == runs {
            std::thread::sleep(IDLE_WATCH.start.saturating_sub(started.elapsed()));
            while started.elapsed() < IDLE_WATCH.end {
                idle_rss_kb = idle_rss_kb.max(status_kb(sidecar.child.id(), "VmRSS:"));
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
    Ok(Startup { times, idle_rss_kb })
}
