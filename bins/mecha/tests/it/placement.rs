//! `mecha placement`, the binary: daprd's flags, health, one runtime
//! through a whole round over a real stream, metrics, and a clean stop.
//! (The protocol in depth: `crates/mecha-placement/tests/protocol.rs`.)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mecha_proto::placement as pb;
use pb::placement_client::PlacementClient;

use crate::harness::{MECHA, free_port, http_get, http_status};

#[tokio::test]
async fn placement_serves_rounds_health_and_metrics() {
    let (port, healthz, metrics) = (free_port(), free_port(), free_port());
    let mut placement = Command::new(MECHA)
        .args(["placement", "-port", &port.to_string()])
        .args(["--healthz-port", &healthz.to_string()])
        .args(["--metrics-port", &metrics.to_string()])
        .args(["--listen-address", "127.0.0.1", "--log-level", "warn"])
        .arg("--metadata-enabled")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while http_status(&format!("http://127.0.0.1:{healthz}/healthz")) != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "placement never became healthy"
        );
        assert!(placement.try_wait().unwrap().is_none(), "placement exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let channel = crate::harness::channel(port).await.unwrap();
    let (to, outbound) = tokio::sync::mpsc::channel(8);
    let host = pb::Host {
        name: "127.0.0.1:50002".into(),
        id: "cart".into(),
        namespace: "default".into(),
        entities: vec!["Cart".into()],
        api_level: 20,
        operation: pb::HostOperation::Report as i32,
        ..pb::Host::default()
    };
    to.send(host).await.unwrap();
    let mut orders = PlacementClient::new(channel)
        .report_dapr_status(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await
        .unwrap()
        .into_inner();
    let mut tables = None;
    for (operation, ack) in [
        ("lock", pb::HostOperation::Lock),
        ("update", pb::HostOperation::Update),
        ("unlock", pb::HostOperation::Unlock),
    ] {
        let order = tokio::time::timeout(Duration::from_secs(10), orders.message())
            .await
            .expect("an order in time")
            .unwrap()
            .unwrap();
        assert_eq!(order.operation, operation);
        tables = tables.or(order.tables);
        let ack = pb::Host {
            operation: ack as i32,
            version: Some(order.version),
            ..pb::Host::default()
        };
        to.send(ack).await.unwrap();
    }
    let tables = tables.expect("the update carries the tables");
    assert_eq!(tables.replication_factor, 100);
    assert_eq!(
        tables.entries["Cart"].load_map["127.0.0.1:50002"].id,
        "cart"
    );

    // daprd's state page lists the runtime.
    let (status, page) = http_get(&format!("http://127.0.0.1:{healthz}/placement/state")).unwrap();
    assert_eq!(status, 200, "{page}");
    let state: serde_json::Value = serde_json::from_str(&page).unwrap();
    assert_eq!(state["tableVersion"], 1, "{state}");
    let host = &state["hostList"][0];
    assert_eq!(host["name"], "127.0.0.1:50002", "{state}");
    assert_eq!(host["appId"], "cart");
    assert_eq!(host["namespace"], "default");
    assert_eq!(host["actorTypes"], serde_json::json!(["Cart"]));
    assert!(host["updatedAt"].as_i64().unwrap() > 1_600_000_000_000_000_000);

    let (status, page) = http_get(&format!("http://127.0.0.1:{metrics}/metrics")).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("mecha_placement_runtimes 1"), "{page}");

    // SIGTERM: a clean stop.
    drop(orders);
    let _ = Command::new("kill")
        .args(["-TERM", &placement.id().to_string()])
        .status();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = placement.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "placement did not stop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
}

#[test]
fn placement_refuses_a_port_in_use() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = crate::harness::run_mecha(&[
        "placement",
        "--port",
        &port.to_string(),
        "--listen-address",
        "127.0.0.1",
        "--healthz-port",
        &free_port().to_string(),
        "--enable-metrics=false",
    ]);
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("--port"), "{logs}");
}
