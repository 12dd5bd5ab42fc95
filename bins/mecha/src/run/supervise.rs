//! Starting apps and runtimes, prefixing their output, and stopping them
//! together.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::AppSpec;
use super::records::{self, Record};

/// How long a process gets to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Prints each line of `stream` with `prefix`.
fn forward<R: AsyncRead + Unpin + Send + 'static>(stream: Option<R>, prefix: String) {
    let Some(stream) = stream else { return };
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            println!("{prefix} {line}");
        }
    });
}

pub fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

struct Running {
    app_id: String,
    sidecar_pid: u32,
    app_pid: Option<u32>,
    sidecar_done: bool,
    app_done: bool,
    app_code: Option<i32>,
    record: PathBuf,
}

enum Exit {
    App(usize, Option<i32>),
    Sidecar(usize, Option<i32>),
}

fn watch(mut child: Child, index: usize, is_app: bool, events: mpsc::UnboundedSender<Exit>) {
    tokio::spawn(async move {
        let code = child.wait().await.ok().and_then(|status| status.code());
        let _ = events.send(if is_app {
            Exit::App(index, code)
        } else {
            Exit::Sidecar(index, code)
        });
    });
}

/// Tells the runtime about its app, as the dapr CLI does (`dapr list`
/// reads these from the metadata API).
fn describe_to_runtime(http_port: u16, attributes: Vec<(&'static str, String)>) {
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for _ in 0..200 {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", http_port)).await {
                for (key, value) in &attributes {
                    let request = format!(
                        "PUT /v1.0/metadata/{key} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{value}",
                        value.len()
                    );
                    if stream.write_all(request.as_bytes()).await.is_err() {
                        break;
                    }
                    let mut buf = [0u8; 512];
                    let _ = stream.read(&mut buf).await;
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

async fn start(
    exe: &Path,
    spec: AppSpec,
    data_dir: &Path,
    single: bool,
    run_file: Option<&Path>,
    events: &mpsc::UnboundedSender<Exit>,
    index: usize,
) -> anyhow::Result<Running> {
    let http_port = match spec.http_port {
        Some(port) => port,
        None => free_port()?,
    };
    let grpc_port = match spec.grpc_port {
        Some(port) => port,
        None => free_port()?,
    };
    let metrics_port = match spec.metrics_port {
        Some(port) => port,
        None => free_port()?,
    };
    let (app_prefix, runtime_prefix) = if single {
        ("== APP ==".to_owned(), "== MECHA ==".to_owned())
    } else {
        (
            format!("== APP - {} ==", spec.app_id),
            format!("== MECHA - {} ==", spec.app_id),
        )
    };

    let mut sidecar = Command::new(exe);
    sidecar
        .arg("sidecar")
        .args(["--app-id", &spec.app_id])
        .args(["--dapr-http-port", &http_port.to_string()])
        .args(["--dapr-grpc-port", &grpc_port.to_string()])
        .args(["--metrics-port", &metrics_port.to_string()])
        .arg("--data-dir")
        .arg(data_dir);
    if let Some(port) = spec.app_port {
        sidecar.args(["--app-port", &port.to_string()]);
    }
    if let Some(protocol) = &spec.app_protocol {
        sidecar.args(["--app-protocol", protocol]);
    }
    for path in &spec.resources {
        sidecar.arg("--resources-path").arg(path);
    }
    if let Some(config) = &spec.config {
        sidecar.arg("--config").arg(config);
    }
    sidecar
        .args(&spec.sidecar_args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    let mut sidecar = sidecar
        .spawn()
        .map_err(|err| anyhow::anyhow!("cannot start the runtime: {err}"))?;
    let sidecar_pid = sidecar.id().unwrap_or(0);
    forward(sidecar.stdout.take(), runtime_prefix.clone());
    forward(sidecar.stderr.take(), runtime_prefix.clone());
    watch(sidecar, index, false, events.clone());

    let mut app_pid = None;
    if let Some((program, args)) = spec.command.split_first() {
        let mut app = Command::new(program);
        app.args(args)
            .env("DAPR_HTTP_PORT", http_port.to_string())
            .env("DAPR_GRPC_PORT", grpc_port.to_string())
            .env("APP_ID", &spec.app_id)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(port) = spec.app_port {
            app.env("APP_PORT", port.to_string());
        }
        if let Some(dir) = &spec.dir {
            app.current_dir(dir);
        }
        match app.spawn() {
            Ok(mut child) => {
                app_pid = child.id();
                forward(child.stdout.take(), app_prefix.clone());
                forward(child.stderr.take(), app_prefix.clone());
                watch(child, index, true, events.clone());
            }
            Err(err) => {
                signal(sidecar_pid, Signal::SIGTERM);
                anyhow::bail!("cannot start the app '{program}': {err}");
            }
        }
    }
    let command = spec.command.join(" ");
    let record = records::write(
        data_dir,
        &Record {
            app_id: spec.app_id.clone(),
            http_port,
            grpc_port,
            app_port: spec.app_port,
            metrics_port,
            command: command.clone(),
            created: records::now(),
            cli_pid: std::process::id(),
            daprd_pid: sidecar_pid,
            app_pid,
            run_template_path: run_file.map(|f| f.to_string_lossy().into_owned()),
        },
    )?;
    let mut attributes = vec![
        ("appCommand", command),
        ("cliPID", std::process::id().to_string()),
    ];
    if let Some(pid) = app_pid {
        attributes.push(("appPID", pid.to_string()));
    }
    describe_to_runtime(http_port, attributes);
    println!(
        "{runtime_prefix} app {} with its runtime: HTTP {http_port}, gRPC {grpc_port}{}",
        spec.app_id,
        spec.app_port
            .map(|p| format!(", app port {p}"))
            .unwrap_or_default()
    );
    Ok(Running {
        app_id: spec.app_id,
        sidecar_pid,
        app_pid,
        sidecar_done: false,
        app_done: app_pid.is_none(),
        app_code: None,
        record,
    })
}

/// Runs every app with its runtime until all are done; returns the exit
/// code to end with.
pub async fn run(
    specs: Vec<AppSpec>,
    data_dir: PathBuf,
    run_file: Option<PathBuf>,
) -> anyhow::Result<u8> {
    std::fs::create_dir_all(&data_dir)?;
    let exe = std::env::current_exe()?;
    let single = specs.len() == 1;
    let run_file = run_file.map(|f| std::fs::canonicalize(&f).unwrap_or(f));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut running = Vec::new();
    for (index, spec) in specs.into_iter().enumerate() {
        match start(
            &exe,
            spec,
            &data_dir,
            single,
            run_file.as_deref(),
            &events_tx,
            index,
        )
        .await
        {
            Ok(started) => running.push(started),
            Err(err) => {
                stop_all(&running);
                return Err(err);
            }
        }
    }
    drop(events_tx);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut stopping = false;
    let mut deadline = None;
    while running.iter().any(|r| !r.sidecar_done || !r.app_done) {
        let kill_after = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c(), if !stopping => {
                stopping = true;
                deadline = Some(tokio::time::Instant::now() + STOP_GRACE);
                stop_all(&running);
            }
            _ = terminate.recv(), if !stopping => {
                stopping = true;
                deadline = Some(tokio::time::Instant::now() + STOP_GRACE);
                stop_all(&running);
            }
            () = kill_after => {
                for r in &running {
                    signal(r.sidecar_pid, Signal::SIGKILL);
                    if let Some(pid) = r.app_pid {
                        signal(pid, Signal::SIGKILL);
                    }
                }
                deadline = None;
            }
            event = events.recv() => match event {
                Some(Exit::App(index, code)) => {
                    let r = &mut running[index];
                    r.app_done = true;
                    r.app_code = code;
                    println!("== {} == the app exited ({})", r.app_id, code.map_or("by a signal".into(), |c| format!("code {c}")));
                    if !r.sidecar_done {
                        signal(r.sidecar_pid, Signal::SIGTERM);
                    }
                }
                Some(Exit::Sidecar(index, code)) => {
                    let r = &mut running[index];
                    r.sidecar_done = true;
                    if !r.app_done {
                        println!("== {} == the runtime exited ({}); stopping the app", r.app_id, code.map_or("by a signal".into(), |c| format!("code {c}")));
                        if let Some(pid) = r.app_pid {
                            signal(pid, Signal::SIGTERM);
                        }
                    }
                }
                None => break,
            },
        }
    }
    for r in &running {
        let _ = std::fs::remove_file(&r.record);
    }
    // The app's own exit code (the first failing one, for several apps); an
    // app stopped by a signal counts as a clean stop.
    let code = running
        .iter()
        .filter_map(|r| r.app_code)
        .find(|c| *c != 0)
        .unwrap_or(0);
    Ok(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}

fn stop_all(running: &[Running]) {
    for r in running {
        if let Some(pid) = r.app_pid.filter(|_| !r.app_done) {
            signal(pid, Signal::SIGTERM);
        }
        if !r.sidecar_done {
            signal(r.sidecar_pid, Signal::SIGTERM);
        }
    }
}
