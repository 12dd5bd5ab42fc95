//! `mecha run`, `mecha list` and `mecha stop`, driven as a user would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{MECHA, free_port, http_get, http_status, run_mecha};

/// A `mecha run` in the background, its output collected line by line.
struct Run {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Run {
    fn start(args: &[&str]) -> Self {
        let mut command = Command::new(MECHA);
        command.arg("run").args(args);
        Self::spawn(command)
    }

    /// Runs `command` (a `mecha run ...`), collecting its output.
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `text`.
    fn expect(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line.clone());
            if line.contains(text) {
                return line;
            }
        }
        panic!("no line with {text:?} in:\n{}", self.seen.join("\n"));
    }

    fn wait(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "mecha run did not stop:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn list(data: &str) -> Vec<serde_json::Value> {
    let out = run_mecha(&["list", "-o", "json", "--data-dir", data]);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn the_app_gets_its_ports_and_its_exit_code_is_passed_on() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    let mut run = Run::start(&[
        "--app-id",
        "exporter",
        "--data-dir",
        data,
        "--",
        "sh",
        "-c",
        "sleep 0.5; echo \"ports $APP_ID $DAPR_HTTP_PORT $DAPR_GRPC_PORT\"; exit 7",
    ]);
    let line = run.expect("== APP == ports exporter");
    // "== APP == ports exporter <http> <grpc>"
    let ports: Vec<u16> = line
        .split_whitespace()
        .skip(5)
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(ports.len(), 2, "{line}");
    assert_ne!(ports[0], ports[1]);
    run.expect("== MECHA ==");
    assert_eq!(run.wait(Duration::from_secs(15)), 7, "the app's exit code");
    assert!(list(data).is_empty(), "a finished run leaves no record");
}

#[test]
fn list_shows_runs_and_stop_stops_them() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().to_str().unwrap();
    let mut run = Run::start(&[
        "--app-id",
        "listed",
        "--data-dir",
        data,
        "--",
        "sh",
        "-c",
        "sleep 120",
    ]);
    run.expect("mecha is up and running");
    let rows = list(data);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["appId"], "listed");
    assert_eq!(row["command"], "sh -c sleep 120");
    let http_port = row["httpPort"].as_u64().unwrap();
    let (runtime_pid, app_pid) = (
        row["daprdPid"].as_u64().unwrap(),
        row["appPid"].as_u64().unwrap(),
    );
    assert!(alive(runtime_pid) && alive(app_pid));
    assert_eq!(
        http_status(&format!("http://127.0.0.1:{http_port}/v1.0/healthz")),
        Some(204)
    );
    let table = run_mecha(&["list", "--data-dir", data]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.starts_with("APP ID") && table.contains("listed"),
        "{table}"
    );

    let stopped = run_mecha(&["stop", "--app-id", "listed", "--data-dir", data]);
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(String::from_utf8_lossy(&stopped.stdout).contains("stopped listed"));
    assert_eq!(run.wait(Duration::from_secs(15)), 0);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!alive(runtime_pid), "the runtime is gone");
    assert!(!alive(app_pid), "the app is gone");
    assert!(list(data).is_empty());
    let again = run_mecha(&["stop", "--app-id", "listed", "--data-dir", data]);
    assert!(!again.status.success(), "nothing left to stop");
}

#[test]
fn ctrl_c_stops_app_and_runtime() {
    let data = tempfile::tempdir().unwrap();
    let mut run = Run::start(&[
        "--app-id",
        "interrupted",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "sleep 120",
    ]);
    run.expect("mecha is up and running");
    let rows = list(data.path().to_str().unwrap());
    let app_pid = rows[0]["appPid"].as_u64().unwrap();
    Command::new("kill")
        .args(["-INT", &run.child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(run.wait(Duration::from_secs(15)), 0);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!alive(app_pid));
}

#[test]
fn a_run_file_runs_several_apps() {
    let dir = tempfile::tempdir().unwrap();
    for app in ["alpha", "beta"] {
        std::fs::create_dir_all(dir.path().join(app)).unwrap();
    }
    let file = dir.path().join("apps.yaml");
    std::fs::write(
        &file,
        "version: 1\ncommon:\n  env:\n    GREETING: hi\napps:\n  - appID: alpha\n    appDirPath: ./alpha\n    command: [\"sh\", \"-c\", \"echo $GREETING from $APP_ID in $(basename $PWD) on $DAPR_HTTP_PORT; sleep 120\"]\n  - appID: beta\n    appDirPath: ./beta\n    env:\n      GREETING: hello\n    command: [\"sh\", \"-c\", \"echo $GREETING from $APP_ID in $(basename $PWD) on $DAPR_HTTP_PORT; sleep 120\"]\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let mut run = Run::start(&["-f", file.to_str().unwrap(), "--data-dir", data]);
    let alpha = run.expect("== APP - alpha == hi from alpha in alpha on");
    let beta = run.expect("== APP - beta == hello from beta in beta on");
    assert_ne!(
        alpha.split_whitespace().last(),
        beta.split_whitespace().last(),
        "own ports"
    );
    run.expect("== MECHA - alpha ==");
    let deadline = Instant::now() + Duration::from_secs(10);
    while list(data).len() < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = run_mecha(&["stop", "-f", file.to_str().unwrap(), "--data-dir", data]);
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert_eq!(run.wait(Duration::from_secs(15)), 0);
}

/// The README's run command, exactly as written but for its two ports
/// (free ones here) and the data directory (a temporary one, through
/// `MECHA_DATA_DIR`): the app answers through the runtime, `mecha stop`
/// stops both, and nothing from start to stop is a warning or an error.
#[test]
fn the_readme_run_command_runs_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo run --release -- run "))
        .expect("the README has a `cargo run --release -- run` command");
    let mut args: Vec<String> = line
        .trim_start_matches("cargo run --release -- ")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let (app_port, http_port) = (free_port(), free_port());
    for (flag, port) in [("--app-port", app_port), ("--dapr-http-port", http_port)] {
        let at = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("the README command has {flag}: {line}"));
        args[at + 1] = port.to_string();
    }
    let app_id = args[args.iter().position(|a| a == "--app-id").unwrap() + 1].clone();
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(MECHA);
    command
        .args(&args)
        .current_dir(&root)
        .env("MECHA_DATA_DIR", data.path());
    let mut run = Run::spawn(command);
    run.expect("mecha is up and running");
    run.expect("the app is listening");
    let url = format!("http://127.0.0.1:{http_port}/v1.0/invoke/{app_id}/method/hello");
    let (status, body) = http_get(&url).expect("the runtime answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"visits\": 1"), "{body}");
    let stopped = Command::new(MECHA)
        .args(["stop", "--app-id", &app_id])
        .env("MECHA_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    run.wait(Duration::from_secs(15));
    run.expect("stopped");
    // Everything printed, to the end.
    while let Ok(line) = run.lines.recv_timeout(Duration::from_secs(2)) {
        run.seen.push(line);
    }
    let noisy: Vec<&String> = run
        .seen
        .iter()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("Traceback"))
        .collect();
    assert!(
        noisy.is_empty(),
        "the first run logged warnings or errors:\n{}",
        run.seen.join("\n")
    );
}
