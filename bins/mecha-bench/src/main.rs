//! `mecha-bench`: measures the real `mecha` binary and, in the same run, the
//! same operations called directly on the component in-process, so figures
//! are reported as ratios and added latency. See docs/benchmarks.md.
//!
//! Build both binaries with the same profile, then run:
//!     cargo build --profile bench-release -p mecha -p mecha-bench
//!     target/bench-release/mecha-bench state

mod actors;
mod databases;
mod floor;
mod invoke;
mod jobs;
mod load;
mod process;
mod pubsub;
mod report;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks of the mecha runtime")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
    /// The mecha binary (default: beside this one).
    #[arg(long, global = true)]
    mecha: Option<PathBuf>,
    /// Worker threads of the load generator (this process). Pin it apart
    /// from the runtimes with taskset: the runtimes it starts inherit its
    /// CPU list unless MECHA_BENCH_RUNTIME_CPUS gives theirs.
    #[arg(long, global = true, default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
}

#[derive(Subcommand)]
enum Bench {
    /// State get and save at 1 KB: HTTP, gRPC and in-process, on the
    /// in-memory and SQLite stores; plus start-up time and idle memory.
    State(load::StateArgs),
    /// State get and save at 1 KB on Redis, PostgreSQL (v1, v2) and
    /// MySQL/MariaDB: through the runtime (HTTP, gRPC) against the
    /// database's own client and the component in-process.
    Databases(databases::DatabaseArgs),
    /// Service invocation: app → runtime → runtime → app against app → app
    /// directly, over HTTP and gRPC.
    Invoke(invoke::InvokeArgs),
    /// Pub/sub per broker: publish latency through the runtime against the
    /// component publishing in-process, publish-to-delivered latency, and
    /// delivered throughput.
    Pubsub(pubsub::PubSubArgs),
    /// The scheduler: registration through gRPC against the store
    /// in-process, fires with and without the app hop, lateness, and
    /// start-up and memory with many registered jobs.
    Jobs(jobs::JobsArgs),
    /// Actors: a method call against a plain invocation of the same app
    /// method, activation, calls per second on one id and across many, and
    /// reminders registered and fired.
    Actors(actors::ActorsArgs),
    /// Start-up time to a healthy /v1.0/healthz, and idle RSS.
    Startup {
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Internal: the bare loopback servers the state benchmark compares to.
    #[command(hide = true)]
    Floor {
        #[arg(long)]
        http_port: u16,
        #[arg(long)]
        grpc_port: u16,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Bench::Floor {
        http_port,
        grpc_port,
    } = cli.command
    {
        return floor::serve(http_port, grpc_port);
    }
    let mecha = cli.mecha.unwrap_or_else(|| {
        std::env::current_exe()
            .expect("own path")
            .with_file_name("mecha")
    });
    anyhow::ensure!(
        mecha.exists(),
        "no mecha binary at {}; build it with the same profile",
        mecha.display()
    );
    process::check_pinning()?;
    let threads = usize::from(cli.threads);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    println!("{}\n", process::cores_note(threads));
    match cli.command {
        Bench::State(args) => runtime.block_on(load::state(&mecha, args)),
        Bench::Invoke(args) => runtime.block_on(invoke::invoke(&mecha, args)),
        Bench::Databases(args) => runtime.block_on(databases::databases(&mecha, args)),
        Bench::Pubsub(args) => runtime.block_on(pubsub::pubsub(&mecha, args)),
        Bench::Jobs(args) => runtime.block_on(jobs::jobs(&mecha, args)),
        Bench::Actors(args) => runtime.block_on(actors::actors(&mecha, args)),
        Bench::Floor { .. } => unreachable!("handled above"),
        Bench::Startup { runs } => {
            let startup = process::startup(&mecha, runs)?;
            println!("{}", report::startup_table(&startup));
            Ok(())
        }
    }
}
