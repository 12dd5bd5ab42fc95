//! What `mecha run` leaves in the data directory while it runs
//! (`runs/<app-id>-<pid>.json`), for `mecha list` and `mecha stop`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::supervise::signal;

/// One app run by `mecha run`; the field names are `dapr list -o json`'s.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub app_id: String,
    pub http_port: u16,
    pub grpc_port: u16,
    pub app_port: Option<u16>,
    pub metrics_port: u16,
    pub command: String,
    /// Unix seconds.
    pub created: u64,
    /// The `mecha run` process.
    pub cli_pid: u32,
    /// The runtime (named as `dapr list` names daprd's pid).
    pub daprd_pid: u32,
    pub app_pid: Option<u32>,
    pub run_template_path: Option<String>,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn runs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("runs")
}

pub fn write(data_dir: &Path, record: &Record) -> anyhow::Result<PathBuf> {
    let dir = runs_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}-{}.json", record.app_id, record.cli_pid));
    std::fs::write(&path, serde_json::to_vec_pretty(record)?)?;
    Ok(path)
}

/// Whether a process runs: it exists, and (where /proc tells) it is not a
/// zombie waiting for its parent to reap it.
fn alive(pid: u32) -> bool {
    let exists = i32::try_from(pid).is_ok_and(|pid| kill(Pid::from_raw(pid), None).is_ok());
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    exists && !zombie
}

/// The runs in progress; records of runs that are gone are removed.
pub fn read_all(data_dir: &Path) -> Vec<Record> {
    let Ok(entries) = std::fs::read_dir(runs_dir(data_dir)) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let record: Option<Record> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        match record {
            Some(record) if alive(record.cli_pid) => records.push(record),
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    records.sort_by(|a, b| (a.created, &a.app_id).cmp(&(b.created, &b.app_id)));
    records
}

fn age(created: u64) -> String {
    let secs = now().saturating_sub(created);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format: table or json.
    #[arg(short = 'o', long, default_value = "table", value_parser = ["table", "json"])]
    pub output: String,
    #[arg(long, env = "MECHA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `mecha list`.
pub fn list(args: ListArgs) -> ExitCode {
    let records = read_all(&crate::data_dir(args.data_dir));
    if args.output == "json" {
        let rows: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let mut row = serde_json::to_value(r).expect("records serialize");
                row["age"] = age(r.created).into();
                row["created"] =
                    mecha_core::units::format_rfc3339(UNIX_EPOCH + Duration::from_secs(r.created))
                        .into();
                row
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).expect("JSON"));
        return ExitCode::SUCCESS;
    }
    if records.is_empty() {
        println!("No apps are running.");
        return ExitCode::SUCCESS;
    }
    let rows: Vec<[String; 9]> = records
        .iter()
        .map(|r| {
            let mut command = r.command.clone();
            if command.chars().count() > 24 {
                command = command.chars().take(21).collect::<String>() + "...";
            }
            [
                r.app_id.clone(),
                r.http_port.to_string(),
                r.grpc_port.to_string(),
                r.app_port.map(|p| p.to_string()).unwrap_or_default(),
                command,
                age(r.created),
                r.daprd_pid.to_string(),
                r.app_pid.map(|p| p.to_string()).unwrap_or_default(),
                r.cli_pid.to_string(),
            ]
        })
        .collect();
    let header = [
        "APP ID",
        "HTTP PORT",
        "GRPC PORT",
        "APP PORT",
        "COMMAND",
        "AGE",
        "RUNTIME PID",
        "APP PID",
        "CLI PID",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(header.to_vec()));
    for row in &rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
    ExitCode::SUCCESS
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// The app to stop.
    #[arg(short = 'a', long, required_unless_present = "run_file")]
    pub app_id: Option<String>,
    /// Stop every app of this run file.
    #[arg(short = 'f', long = "run-file")]
    pub run_file: Option<PathBuf>,
    #[arg(long, env = "MECHA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `mecha stop`: asks each matching `mecha run` to stop (as Ctrl-C would),
/// and waits for it.
pub fn stop(args: StopArgs) -> ExitCode {
    let records = read_all(&crate::data_dir(args.data_dir));
    let file = args.run_file.map(|f| {
        std::fs::canonicalize(&f)
            .unwrap_or(f)
            .to_string_lossy()
            .into_owned()
    });
    let matching: Vec<&Record> = records
        .iter()
        .filter(|r| match (&args.app_id, &file) {
            (Some(id), _) => &r.app_id == id,
            (None, Some(file)) => r.run_template_path.as_deref() == Some(file.as_str()),
            (None, None) => false,
        })
        .collect();
    if matching.is_empty() {
        eprintln!("error: no running app matches");
        return ExitCode::FAILURE;
    }
    for record in &matching {
        signal(record.cli_pid, Signal::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while matching.iter().any(|r| alive(r.cli_pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for record in &matching {
        if alive(record.cli_pid) {
            for pid in [Some(record.daprd_pid), record.app_pid, Some(record.cli_pid)]
                .into_iter()
                .flatten()
            {
                signal(pid, Signal::SIGKILL);
            }
            println!("killed {}", record.app_id);
        } else {
            println!("stopped {}", record.app_id);
        }
    }
    ExitCode::SUCCESS
}
