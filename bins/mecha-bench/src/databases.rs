//! The state benchmark on real databases: get and save at 1 KB through the
//! runtime (HTTP and gRPC) against the same operation made directly with
//! the database's own Rust client (redis-rs, sqlx), and against the Mecha
//! component called in-process, all in one run. The databases are the
//! machine's, on their default loopback ports; the benchmark's tables are
//! its own and are dropped at the end.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use mecha_core::{MetadataReader, Properties};
use mecha_state::{SetRequest, StateStore};
use sqlx::{AssertSqlSafe, Row};

use crate::load::{self, Direct, Op, Target};
use crate::process;
use crate::report::{Measure, median_of};

#[derive(clap::Args)]
pub struct DatabaseArgs {
    /// The databases: redis, postgres (v1), postgres-v2, mysql.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "redis,postgres,postgres-v2,mysql"
    )]
    stores: Vec<String>,
    /// Repetitions of each measurement; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Sequential requests per latency measurement.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Concurrent connections for throughput.
    #[arg(long, default_value_t = 16)]
    connections: usize,
}

struct RedisDirect(redis::aio::ConnectionManager);

#[async_trait]
impl Direct for RedisDirect {
    async fn get(&self, key: &str) -> anyhow::Result<usize> {
        let (data, _version): (Vec<u8>, String) = redis::cmd("HMGET")
            .arg(key)
            .arg("data")
            .arg("version")
            .query_async(&mut self.0.clone())
            .await?;
        Ok(data.len())
    }

    async fn save(&self, key: &str, value: &Bytes) -> anyhow::Result<()> {
        let () = redis::cmd("HSET")
            .arg(key)
            .arg("data")
            .arg(&value[..])
            .arg("version")
            .arg(1)
            .query_async(&mut self.0.clone())
            .await?;
        Ok(())
    }
}

struct PgDirect {
    pool: sqlx::PgPool,
    get: String,
    save: String,
}

#[async_trait]
impl Direct for PgDirect {
    async fn get(&self, key: &str) -> anyhow::Result<usize> {
        let row = sqlx::query(AssertSqlSafe(self.get.as_str()))
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(match row.try_get::<String, _>(0) {
            Ok(text) => text.len(),
            Err(_) => row.try_get::<Vec<u8>, _>(0)?.len(),
        })
    }

    async fn save(&self, key: &str, value: &Bytes) -> anyhow::Result<()> {
        let query = sqlx::query(AssertSqlSafe(self.save.as_str())).bind(key);
        let query = if self.save.contains("bytea") {
            query.bind(value.to_vec())
        } else {
            query.bind(std::str::from_utf8(value)?)
        };
        query.execute(&self.pool).await?;
        Ok(())
    }
}

struct MySqlDirect {
    pool: sqlx::MySqlPool,
    table: String,
    /// A new ETag per save, as the store writes one: a save that changes
    /// nothing would cost MariaDB no write at all.
    saves: std::sync::atomic::AtomicU64,
}

#[async_trait]
impl Direct for MySqlDirect {
    async fn get(&self, key: &str) -> anyhow::Result<usize> {
        let sql = format!(
            "SELECT CAST(value AS CHAR), eTag FROM {} WHERE id = ?",
            self.table
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<String, _>(0)?.len())
    }

    async fn save(&self, key: &str, value: &Bytes) -> anyhow::Result<()> {
        let sql = format!(
            "INSERT INTO {} (id, value, eTag, isbinary) VALUES (?, ?, ?, 0) \
             ON DUPLICATE KEY UPDATE value = VALUES(value), eTag = VALUES(eTag)",
            self.table
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .bind(std::str::from_utf8(value)?)
            .bind(format!(
                "00000000-0000-4000-8000-{:012x}",
                self.saves
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// One database under test: the sidecar's component file, the component
/// in-process, its own client, and what to drop afterwards.
struct Setup {
    label: &'static str,
    yaml: String,
    component: Arc<dyn StateStore>,
    direct: Arc<dyn Direct>,
    cleanup: Option<(String, Cleanup)>,
}

enum Cleanup {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

fn component_yaml(type_name: &str, version: &str, metadata: &[(&str, String)]) -> String {
    let mut yaml = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: db\nspec:\n  type: {type_name}\n  version: {version}\n  metadata:\n"
    );
    for (key, value) in metadata {
        yaml.push_str(&format!("  - name: {key}\n    value: \"{value}\"\n"));
    }
    yaml
}

fn properties(metadata: &[(&str, String)]) -> Properties {
    metadata
        .iter()
        .fold(Properties::new(), |props, (k, v)| props.with(k, v))
}

const PG: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable";

async fn setup(name: &str) -> anyhow::Result<Setup> {
    let tag = std::process::id();
    match name {
        "redis" => {
            let metadata = [("redisHost", "127.0.0.1:6379".to_owned())];
            let props = properties(&metadata);
            let config = mecha_component_redis::RedisStateConfig::from_metadata(
                &MetadataReader::new(&props),
            );
            let (_, manager) = config.settings.connect().await?;
            Ok(Setup {
                label: "state.redis",
                yaml: component_yaml("state.redis", "v1", &metadata),
                component: Arc::new(mecha_component_redis::RedisStateStore::connect(config).await?),
                direct: Arc::new(RedisDirect(manager)),
                cleanup: None,
            })
        }
        "postgres" | "postgres-v2" => {
            let v2 = name == "postgres-v2";
            let table = format!("mecha_bench_{tag}_{}", if v2 { "v2_state" } else { "v1" });
            let mut metadata = vec![
                ("connectionString", PG.to_owned()),
                ("metadataTableName", format!("mecha_bench_{tag}_meta")),
            ];
            metadata.push(if v2 {
                ("tablePrefix", format!("mecha_bench_{tag}_v2_"))
            } else {
                ("tableName", table.clone())
            });
            let props = properties(&metadata);
            let layout = if v2 {
                mecha_component_postgres::Layout::V2
            } else {
                mecha_component_postgres::Layout::V1
            };
            let config = mecha_component_postgres::PgStateConfig::from_metadata(
                layout,
                &MetadataReader::new(&props),
            );
            let component = mecha_component_postgres::PgStateStore::open(config).await?;
            let options = mecha_component_postgres::conninfo::parse(PG)
                .map_err(anyhow::Error::msg)?
                .options;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(16)
                .connect_with(options)
                .await?;
            let (get, save) = if v2 {
                (
                    format!("SELECT value, etag::text FROM {table} WHERE key = $1"),
                    format!(
                        "INSERT INTO {table} (key, value, etag) VALUES ($1, $2::bytea, gen_random_uuid()) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = excluded.etag"
                    ),
                )
            } else {
                (
                    format!("SELECT value::text, xmin::text FROM {table} WHERE key = $1"),
                    format!(
                        "INSERT INTO {table} (key, value, isbinary) VALUES ($1, $2::jsonb, false) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updatedate = now()"
                    ),
                )
            };
            Ok(Setup {
                label: if v2 {
                    "state.postgresql v2"
                } else {
                    "state.postgresql v1"
                },
                yaml: component_yaml("state.postgresql", if v2 { "v2" } else { "v1" }, &metadata),
                component,
                direct: Arc::new(PgDirect {
                    pool: pool.clone(),
                    get,
                    save,
                }),
                cleanup: Some((
                    format!("DROP TABLE IF EXISTS {table}, mecha_bench_{tag}_meta"),
                    Cleanup::Postgres(pool),
                )),
            })
        }
        "mysql" => {
            let schema = format!("mecha_bench_{tag}");
            let metadata = [
                ("connectionString", "root:@tcp(127.0.0.1:3306)/".to_owned()),
                ("schemaName", schema.clone()),
            ];
            let props = properties(&metadata);
            let config = mecha_component_mysql::MySqlStateConfig::from_metadata(
                &MetadataReader::new(&props),
            );
            let component = mecha_component_mysql::MySqlStateStore::open(config).await?;
            let options =
                mecha_component_mysql::dsn::parse(&format!("root:@tcp(127.0.0.1:3306)/{schema}"))
                    .map_err(anyhow::Error::msg)?;
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(16)
                .connect_with(options.options.database(&schema))
                .await?;
            Ok(Setup {
                label: "state.mysql (MariaDB)",
                yaml: component_yaml("state.mysql", "v1", &metadata),
                component,
                direct: Arc::new(MySqlDirect {
                    pool: pool.clone(),
                    table: "state".into(),
                    saves: Default::default(),
                }),
                cleanup: Some((
                    format!("DROP DATABASE IF EXISTS {schema}"),
                    Cleanup::MySql(pool),
                )),
            })
        }
        other => anyhow::bail!("unknown store '{other}': redis, postgres, postgres-v2 or mysql"),
    }
}

struct Figures {
    label: &'static str,
    op: Op,
    /// Direct client, in-process component, HTTP, gRPC, HTTP floor, gRPC
    /// floor.
    paths: [Measure; 6],
    rss_mb: f64,
}

pub async fn databases(mecha: &Path, args: DatabaseArgs) -> anyhow::Result<()> {
    let value = load::value_1k();
    let mut rows = Vec::new();
    let (mut floor, floor_http, floor_grpc) = crate::floor::spawn()?;
    let floor_base = format!("http://127.0.0.1:{floor_http}");
    let floor_pid = floor.id();
    for name in &args.stores {
        let setup = setup(name).await?;
        let (sidecar, _) = process::spawn(mecha, Some(&setup.yaml))?;
        let pid = sidecar.child.id();
        let own = std::process::id();
        let http = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let base = format!("http://127.0.0.1:{}", sidecar.http_port);
        // The key every get reads (`bench` is the sidecar's app id).
        setup
            .component
            .set(&SetRequest::new("bench||bench-key", value.clone()))
            .await?;
        for op in [Op::Get, Op::Save] {
            let mut measures: Vec<Vec<Measure>> = vec![Vec::new(); 6];
            for _ in 0..args.runs {
                let http_target = |base: &String| Target::Http {
                    client: http.clone(),
                    base: base.clone(),
                    store: "db",
                };
                let paths: Vec<(Vec<Target>, u32)> = vec![
                    (
                        vec![Target::Direct(setup.direct.clone()); args.connections],
                        own,
                    ),
                    (
                        vec![Target::InProcess(setup.component.clone()); args.connections],
                        own,
                    ),
                    (vec![http_target(&base); args.connections], pid),
                    (
                        load::grpc_targets(sidecar.grpc_port, "db", args.connections).await?,
                        pid,
                    ),
                    (vec![http_target(&floor_base); args.connections], floor_pid),
                    (
                        load::grpc_targets(floor_grpc, "db", args.connections).await?,
                        floor_pid,
                    ),
                ];
                for (index, (targets, cpu_pid)) in paths.into_iter().enumerate() {
                    let samples = load::latency(&targets[0], op, args.requests, &value).await?;
                    let (rate, cpu) = load::throughput(
                        targets,
                        op,
                        Duration::from_secs(args.seconds),
                        &value,
                        cpu_pid,
                    )
                    .await?;
                    measures[index].push(Measure::new(samples, rate, cpu));
                }
            }
            rows.push(Figures {
                label: setup.label,
                op,
                paths: std::array::from_fn(|i| median_of(&measures[i])),
                rss_mb: process::status_kb(pid, "VmRSS:") as f64 / 1024.0,
            });
        }
        drop(sidecar);
        match setup.cleanup {
            Some((sql, Cleanup::Postgres(pool))) => {
                sqlx::query(AssertSqlSafe(sql)).execute(&pool).await?;
            }
            Some((sql, Cleanup::MySql(pool))) => {
                sqlx::query(AssertSqlSafe(sql)).execute(&pool).await?;
            }
            None => {
                let mut conn = redis::Client::open("redis://127.0.0.1:6379/")?
                    .get_multiplexed_async_connection()
                    .await?;
                let () = redis::cmd("DEL")
                    .arg("bench||bench-key")
                    .arg("bench||bench-save")
                    .query_async(&mut conn)
                    .await?;
            }
        }
    }
    let _ = floor.kill();
    let _ = floor.wait();
    println!("{}", table(&rows, &args));
    Ok(())
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn table(rows: &[Figures], args: &DatabaseArgs) -> String {
    let mut out = format!(
        "{} runs (medians); latency: {} sequential calls on one connection after {} warm-up; throughput: {} connections for {} s; 1 KB JSON value\n\n\
         | store | op | path | p50 µs | p90 µs | p99 µs | p50 / direct | p99 / direct | runtime's own p50 µs (over the floor and the direct call) | calls/s ({} conns) | CPU µs/call (serving process) |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        args.runs,
        args.requests,
        args.requests / 10,
        args.connections,
        args.seconds,
        args.connections
    );
    let names = [
        "the database's own client, direct",
        "Mecha component, in-process",
        "HTTP through the runtime",
        "gRPC through the runtime",
        "HTTP floor (a bare server, no database)",
        "gRPC floor (a bare server, no database)",
    ];
    for row in rows {
        let direct = &row.paths[0];
        for (index, (name, m)) in names.iter().zip(&row.paths).enumerate() {
            // What the runtime adds beyond the hop any process pays (the
            // floor) and the database call itself (direct).
            let own = match index {
                2 | 3 => format!(
                    "{:.0}",
                    (m.p50.as_secs_f64()
                        - row.paths[index + 2].p50.as_secs_f64()
                        - direct.p50.as_secs_f64())
                        * 1e6
                ),
                _ => "—".into(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.2}× | {:.2}× | {} | {:.0} | {:.1} |\n",
                row.label,
                row.op,
                name,
                us(m.p50),
                us(m.p90),
                us(m.p99),
                m.p50.as_secs_f64() / direct.p50.as_secs_f64(),
                m.p99.as_secs_f64() / direct.p99.as_secs_f64(),
                own,
                m.rate,
                m.cpu.as_secs_f64() * 1e6,
            ));
        }
    }
    let rss: Vec<String> = rows
        .iter()
        .filter(|r| r.op == Op::Save)
        .map(|r| format!("{} {:.1} MB", r.label, r.rss_mb))
        .collect();
    out.push_str(&format!(
        "\nSidecar RSS after the load: {}.",
        rss.join("; ")
    ));
    out
}
