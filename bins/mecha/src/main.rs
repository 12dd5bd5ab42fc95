//! `mecha`: a distributed application runtime that speaks Dapr's APIs.

mod actors;
mod connections;
mod defaults;
mod flags;
mod listeners;
mod logging;
mod metrics;
mod nameresolution;
mod pages;
mod placement;
mod planning;
mod run;
mod sidecar;
mod subscriptions;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "mecha",
    version,
    about = "A distributed application runtime that speaks Dapr's APIs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the runtime beside an app; accepts daprd's flags.
    Sidecar(Box<flags::SidecarArgs>),
    /// Check resource files without connecting to anything.
    Validate(validate::ValidateArgs),
    /// Run an app (or several, with -f) with its runtime, for development.
    Run(Box<run::RunArgs>),
    /// List the apps started by `mecha run`.
    List(run::ListArgs),
    /// Stop apps started by `mecha run`.
    Stop(run::StopArgs),
    /// List the component types this binary can load, with their block.
    Components,
    /// Serve actor placement to runtimes; accepts daprd's placement flags.
    Placement(placement::PlacementArgs),
}

/// jemalloc, with a background thread that returns freed memory to the
/// system within a second of a load (`.cargo/config.toml` sets its decay):
/// glibc's arenas keep it. See docs/benchmarks.md for the measurements.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let argv = flags::normalize_args(std::env::args());
    let cli = Cli::parse_from(argv);
    match cli.command {
        Command::Sidecar(args) => sidecar::main(*args),
        Command::Validate(args) => validate::main(args),
        Command::Run(args) => run::main(*args),
        Command::List(args) => run::list(args),
        Command::Stop(args) => run::stop(args),
        Command::Components => components(),
        Command::Placement(args) => placement::main(args),
    }
}

/// `mecha components`: one line per component type, `type block`, and the
/// cargo feature that builds a type compiled out.
fn components() -> ExitCode {
    for entry in mecha_catalog::registry().types() {
        match entry.compiled_out {
            None => println!("{}\t{}", entry.type_name, entry.block),
            Some(feature) => println!(
                "{}\t{}\tcompiled out (cargo feature '{feature}')",
                entry.type_name, entry.block
            ),
        }
    }
    ExitCode::SUCCESS
}

/// The data directory: `--data-dir`, `MECHA_DATA_DIR`, else
/// `$XDG_DATA_HOME/mecha` (`~/.local/share/mecha`).
pub fn data_dir(flag: Option<PathBuf>) -> PathBuf {
    if let Some(dir) = flag {
        return dir;
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("mecha");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/mecha")
}
