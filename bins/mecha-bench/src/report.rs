//! Medians and markdown tables.

use std::time::Duration;

use crate::load::Op;
use crate::process::Startup;

/// One measurement: latency percentiles, throughput, CPU per call.
#[derive(Clone, Debug)]
pub struct Measure {
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub rate: f64,
    pub cpu: Duration,
}

impl Measure {
    pub fn new(mut samples: Vec<Duration>, rate: f64, cpu: Duration) -> Self {
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            rate,
            cpu,
        }
    }
}

fn median_by<T: Copy + PartialOrd>(values: impl Iterator<Item = T>) -> T {
    let mut values: Vec<T> = values.collect();
    values.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    values[values.len() / 2]
}

/// The median of values.
pub fn median_f64(values: &[f64]) -> f64 {
    median_by(values.iter().copied())
}

/// The medians of several runs of one path.
pub fn median_of(measures: &[Measure]) -> Measure {
    median(measures)
}

/// The medians of several runs of one path.
fn median(measures: &[Measure]) -> Measure {
    Measure {
        p50: median_by(measures.iter().map(|m| m.p50)),
        p90: median_by(measures.iter().map(|m| m.p90)),
        p99: median_by(measures.iter().map(|m| m.p99)),
        rate: median_by(measures.iter().map(|m| m.rate)),
        cpu: median_by(measures.iter().map(|m| m.cpu)),
    }
}

pub struct Row {
    store: &'static str,
    op: Op,
    /// In-process, HTTP, gRPC, HTTP floor, gRPC floor.
    paths: [Measure; 5],
}

impl Row {
    pub fn new(store: &'static str, op: Op, measures: Vec<Vec<Measure>>) -> Self {
        Self {
            store,
            op,
            paths: [
                median(&measures[0]),
                median(&measures[1]),
                median(&measures[2]),
                median(&measures[3]),
                median(&measures[4]),
            ],
        }
    }
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

pub fn state_table(rows: &[Row], summary: &str) -> String {
    let mut out = format!(
        "{summary}\n\n| store | op | path | p50 µs | p90 µs | p99 µs | added p50 µs (vs in-process) | p50 ratio | runtime's own p50 µs (over the floor) | calls/s (16 conns) | CPU µs/call |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    let names = [
        "in-process",
        "HTTP",
        "gRPC",
        "HTTP floor (no runtime)",
        "gRPC floor (no runtime)",
    ];
    for row in rows {
        let base = &row.paths[0];
        for (index, (name, m)) in names.iter().zip(&row.paths).enumerate() {
            let added = m.p50.as_secs_f64() - base.p50.as_secs_f64();
            // The runtime's own share: its p50 minus the bare server's.
            let over_floor = match index {
                1 | 2 => format!(
                    "{:.1}",
                    (m.p50.as_secs_f64() - row.paths[index + 2].p50.as_secs_f64()) * 1e6
                ),
                _ => "—".into(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.2}× | {} | {:.0} | {} |\n",
                row.store,
                row.op,
                name,
                us(m.p50),
                us(m.p90),
                us(m.p99),
                if index == 0 {
                    "—".into()
                } else {
                    format!("{:.1}", added * 1e6)
                },
                m.p50.as_secs_f64() / base.p50.as_secs_f64(),
                over_floor,
                m.rate,
                us(m.cpu),
            ));
        }
    }
    out
}

pub fn invoke_table(
    rows: &[crate::invoke::Figures],
    rss: &[(String, f64, f64)],
    summary: &str,
) -> String {
    let mut out = format!(
        "{summary}\n\n| path | p50 µs | p90 µs | p99 µs | added p50 µs | added p99 µs | calls/s (16 conns) | runtime CPU per 1000 calls | runtime vCPU at the rate |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for (index, row) in rows.iter().enumerate() {
        // Each runtime path follows its direct path.
        let direct = &rows[index - index % 2].latency;
        let m = &row.latency;
        let added = |a: Duration, b: Duration| {
            if index % 2 == 0 {
                "—".to_owned()
            } else {
                format!("{:.1}", (a.as_secs_f64() - b.as_secs_f64()) * 1e6)
            }
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {} |\n",
            row.name,
            us(m.p50),
            us(m.p90),
            us(m.p99),
            added(m.p50, direct.p50),
            added(m.p99, direct.p99),
            m.rate,
            row.runtime_cpu_per_1000
                .map_or("—".into(), |c| format!("{:.3} s", c.as_secs_f64())),
            row.runtime_vcpu.map_or("—".into(), |v| format!("{v:.3}")),
        ));
    }
    out.push_str("\nRuntime memory after the load (RSS / peak):");
    for (name, now, peak) in rss {
        out.push_str(&format!(" {name} {now:.1} / {peak:.1} MB;"));
    }
    out
}

pub fn startup_table(startup: &Startup) -> String {
    let mut times = startup.times.clone();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "start-up to a healthy /v1.0/healthz (embedded defaults, fresh data dir), {} runs: median {:.1} ms, min {:.1} ms, max {:.1} ms\nidle RSS (highest from {} s to {} s after start): {:.1} MB",
        times.len(),
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        crate::process::IDLE_WATCH.start.as_secs(),
        crate::process::IDLE_WATCH.end.as_secs(),
        startup.idle_rss_kb as f64 / 1024.0
    )
}
