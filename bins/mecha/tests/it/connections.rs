//! Every port closes connections that hold it without bringing a request
//! (the header timeout, 10 s), and a request body that stalls; live
//! streams stay open past it.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mecha_proto::runtime as pb;

use crate::harness::{Options, Sidecar};

/// The header timeout, and how late a close may come after it.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const SLACK: Duration = Duration::from_secs(5);

/// Opens a connection and sends `first`; then, when `drip` is given, one
/// byte of it every 500 ms (a slowloris). Returns when the runtime closed
/// the connection, with how long that took, or `None` when it stayed open
/// past the timeout and its slack.
fn held(port: u16, first: &[u8], drip: Option<&'static [u8]>) -> Option<Duration> {
    let opened = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(first).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut drip = drip.unwrap_or_default().iter().cycle();
    let mut buffer = [0u8; 4096];
    while opened.elapsed() < HEADER_TIMEOUT + SLACK {
        match stream.read(&mut buffer) {
            // An answer (to a stalled body) may come before the close.
            Ok(n) if n > 0 => continue,
            Ok(_) => return Some(opened.elapsed()),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(opened.elapsed()),
        }
        if let Some(byte) = drip.next()
            && stream.write_all(&[*byte]).is_err()
        {
            return Some(opened.elapsed());
        }
    }
    None
}

/// What a case is called, the port, what it sends first, and what it then
/// sends a byte at a time.
type Case = (&'static str, u16, &'static [u8], Option<&'static [u8]>);

#[test]
fn slow_and_idle_connections_are_closed_on_every_port() {
    let sidecar = Sidecar::start(Options::default());
    let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let cases: Vec<Case> = vec![
        ("HTTP, idle", sidecar.http_port, b"", None),
        ("HTTP, partial request line", sidecar.http_port, b"GET /v1.0/heal", None),
        (
            "HTTP, headers without the final CRLF",
            sidecar.http_port,
            b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\n",
            None,
        ),
        (
            "HTTP, slowloris",
            sidecar.http_port,
            b"GET /v1.0/healthz HTTP/1.1\r\n",
            Some(b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"),
        ),
        (
            "HTTP, a body one byte short",
            sidecar.http_port,
            b"POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 31\r\n\r\n[{\"key\":\"k\",\"value\":\"v\"}",
            None,
        ),
        ("HTTP, a bare HTTP/2 preface", sidecar.http_port, preface, None),
        ("gRPC, idle", sidecar.grpc_port, b"", None),
        ("gRPC, a bare HTTP/2 preface", sidecar.grpc_port, preface, None),
        ("metrics, idle", sidecar.metrics_port, b"", None),
        (
            "metrics, partial request",
            sidecar.metrics_port,
            b"GET /metrics HTTP/1.1\r\n",
            None,
        ),
    ];
    let waits: Vec<_> = cases
        .into_iter()
        .map(|(what, port, first, drip)| {
            std::thread::spawn(move || (what, held(port, first, drip)))
        })
        .collect();
    for wait in waits {
        let (what, closed) = wait.join().unwrap();
        assert!(
            closed.is_some(),
            "{what}: still open {:?} after it was opened",
            HEADER_TIMEOUT + SLACK
        );
    }
    // The runtime still serves.
    assert_eq!(
        crate::harness::http_status(&sidecar.http("/v1.0/healthz")),
        Some(204)
    );
}

/// A streaming subscription quiet for longer than the header timeout stays
/// open and gets the event published after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_outlives_the_header_timeout() {
    let sidecar = tokio::task::spawn_blocking(|| Sidecar::start(Options::default()))
        .await
        .unwrap();
    let mut client = sidecar.grpc().await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(
            pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType::InitialRequest(
                pb::SubscribeTopicEventsRequestInitialAlpha1 {
                    pubsub_name: "pubsub".into(),
                    topic: "quiet".into(),
                    ..Default::default()
                },
            ),
        ),
    })
    .await
    .unwrap();
    let mut stream = client
        .subscribe_topic_events_alpha1(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // The first message says the subscription is in place.
    stream.message().await.unwrap().unwrap();
    // Quiet past the header timeout: the condition under test is time.
    tokio::time::sleep(HEADER_TIMEOUT + SLACK).await;
    client
        .publish_event(pb::PublishEventRequest {
            pubsub_name: "pubsub".into(),
            topic: "quiet".into(),
            data: bytes::Bytes::from_static(b"{\"late\":true}"),
            data_content_type: "application/json".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the event came")
        .unwrap()
        .expect("the stream is open");
    let Some(
        pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType::EventMessage(
            event,
        ),
    ) = event.subscribe_topic_events_response_type
    else {
        panic!("not an event: {event:?}");
    };
    assert_eq!(event.topic, "quiet");
    drop(tx);
}
