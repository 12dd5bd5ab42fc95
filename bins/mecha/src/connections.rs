//! One accept loop for every port of the runtime (the API ports, the
//! runtime-to-runtime port, the metrics port), with the limits that keep
//! slow, idle or hostile clients from holding it:
//!
//! - **header timeout**: a connection must bring a whole request (its
//!   headers) within `header` of opening; an idle socket, a partial request
//!   line, headers without their final CRLF and a bare HTTP/2 preface are
//!   closed then;
//! - **idle timeout**: a connection with no request in flight for `idle` is
//!   closed (HTTP/2 with GOAWAY); a request is in flight until its answer's
//!   body has been sent, so live streams (streaming subscriptions,
//!   configuration subscriptions, the peer plane's streams) are never cut;
//! - **stalled bodies** (HTTP ports): a request body that brings nothing
//!   for `body_stall` while it is read fails, so a body one byte short does
//!   not hold its handler;
//! - **HTTP/2 keep-alive pings** (every 10 s, 5 s to answer, as daprd's
//!   gRPC server), a limit on concurrent streams per connection and on
//!   connections per port (more wait in the listen backlog).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use mecha_invoke::body::Guarded;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How often a connection told to close is checked for requests in
/// flight; it is dropped once it has none.
const CLOSE_CHECK: Duration = Duration::from_secs(1);

/// HTTP/2's flow-control window per stream (the connection's is 64 times).
const STREAM_WINDOW: u32 = 128 * 1024;

/// The limits of one port.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Whether the port speaks HTTP/2 only (gRPC), or HTTP/1.1 and h2c.
    pub http2_only: bool,
    /// From opening to a whole first request (daprd: `ReadHeaderTimeout`).
    pub header: Duration,
    /// With no request in flight, after the first.
    pub idle: Duration,
    /// How long a request body may bring nothing while it is read; `None`
    /// on gRPC ports, where a client stream may rightly be quiet for long.
    pub body_stall: Option<Duration>,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection.
    pub streams: u32,
    /// Connections served at once on the port.
    pub connections: usize,
}

impl Limits {
    /// Dapr's HTTP API and the metrics port.
    pub const HTTP: Self = Self {
        http2_only: false,
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        body_stall: Some(Duration::from_secs(10)),
        keepalive_interval: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(5),
        streams: 1000,
        connections: 8192,
    };

    /// Dapr's gRPC API.
    pub const GRPC: Self = Self {
        http2_only: true,
        // As daprd's gRPC servers' `MaxConnectionIdle`.
        idle: Duration::from_secs(180),
        body_stall: None,
        ..Self::HTTP
    };

    /// The runtime-to-runtime port: as the gRPC API, and HTTP/1.1 for
    /// small calls (`mecha_peers`), whose pooled connections the callers
    /// drop after 90 s idle, before this side's 180 s.
    pub const PEERS: Self = Self {
        http2_only: false,
        ..Self::GRPC
    };
}

/// Serves `service` on `listener` within `limits` until `shutdown`
/// resolves, then lets every connection finish its requests (HTTP/2 with
/// GOAWAY) and resolves once they have.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) where
    S: tower::Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header timeout is ours (it also covers HTTP/2), not hyper's.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout)
        .max_concurrent_streams(limits.streams)
        // A stream may hold a 64th of its connection's window: a request
        // waiting for the memory budget stops reading its body, and must
        // not take the window the requests holding the budget need to
        // finish (hyper's defaults, 1 MiB each, let one stream take all).
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(64 * STREAM_WINDOW);
    if limits.http2_only {
        builder = builder.http2_only();
    }
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.connections));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors or a connection reset before it was
                    // taken: wait a little rather than spin.
                    tracing::debug!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        // Small answers go out at once instead of waiting on Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let service = Watched {
            inner: service.clone(),
            activity: activity.clone(),
            stall: limits.body_stall,
        };
        let builder = builder.clone();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let mut idle = std::pin::pin!(activity.idle(limits.header, limits.idle));
            // Once the connection is told to close (no request in flight for
            // too long, or shutdown), it has a moment to close by itself
            // (HTTP/2's GOAWAY; HTTP/1 after its request), then is dropped
            // at the first check that finds no request in flight: a partial
            // request is not one, and would hold a graceful close forever.
            let mut closing = false;
            loop {
                let check = async {
                    if closing {
                        tokio::time::sleep(CLOSE_CHECK).await;
                    } else {
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(err) = result {
                            tracing::debug!("connection ended: {err}");
                        }
                        break;
                    }
                    () = idle.as_mut(), if !closing => {
                        tracing::debug!("closing a connection with no request in flight");
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    _ = stopping.changed(), if !closing => {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    () = check => {
                        if !activity.busy() {
                            break;
                        }
                    }
                }
            }
            drop(stopping);
        });
    }
    // No more connections; those open finish their requests.
    drop(listener);
    let _ = stop.send(true);
    drop(stopping);
    stop.closed().await;
}

/// What a connection is doing: how many requests are in flight, and since
/// when it has had none. Requests only count (no lock, no wake-up per
/// request); the watchdog (`idle`) reads the counts when its timer ends.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to when the last request ended; `u64::MAX`
    /// before any request.
    quiet_since: AtomicU64,
}

const NEVER_SERVED: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            quiet_since: AtomicU64::new(NEVER_SERVED),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// Resolves once the connection has had no request in flight for
    /// `first` (before any request) or `idle` (after).
    async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            let deadline = if self.busy() {
                // Looked at again once a whole idle period could have passed.
                Instant::now() + idle
            } else {
                match self.quiet_since.load(Ordering::Acquire) {
                    NEVER_SERVED => self.opened + first,
                    ms => self.opened + Duration::from_millis(ms) + idle,
                }
            };
            if deadline <= Instant::now() && !self.busy() {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One request in flight; it ends when dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let quiet = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        // Set before the count drops, so the watchdog never sees an idle
        // connection with an old quiet time.
        activity.quiet_since.store(quiet, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The port's service, counting requests in flight.
#[derive(Clone)]
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    stall: Option<Duration>,
}

/// An answer's body keeps its request in flight until it is sent.
type Tracked<B> = Guarded<B, InFlight>;
type Answer<B> = Result<Response<Tracked<B>>, Infallible>;

impl<S, B> hyper::service::Service<Request<Incoming>> for Watched<S>
where
    S: tower::Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Tracked<B>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Answer<B>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        let request = request.map(|inner| RequestBody {
            inner,
            stall: self.stall,
            timer: None,
            waiting: false,
        });
        let call = tower::ServiceExt::oneshot(self.inner.clone(), request);
        Box::pin(async move {
            let response = call.await?;
            Ok(response.map(|body| Guarded::new(body, in_flight)))
        })
    }
}

/// A request body as the port's service gets it: hyper's, failing when
/// it brings nothing for the port's stall limit (if any) while it is read.
pub struct RequestBody {
    inner: Incoming,
    stall: Option<Duration>,
    /// Made on the first wait only: most bodies come with their headers.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer runs for the current wait. A wait starts when the
    /// body is read and has nothing: time when nobody reads it (a reader
    /// waiting for the memory budget) is not the client's stall.
    waiting: bool,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                let Some(limit) = this.stall else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if !this.waiting {
                    timer.as_mut().reset(Instant::now() + limit);
                    this.waiting = true;
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                        "the request body brought nothing for {}s",
                        limit.as_secs()
                    )
                    .into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
