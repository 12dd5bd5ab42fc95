//! A pool of HTTP/1.1 connections to one address, over hyper's
//! connection-level client, for the runtime's outbound calls: the app
//! channel's (`--app-protocol http`, `mecha-channel`) and the peer plane's
//! small calls (`mecha-peers`).
//!
//! hyper-util's pooled client keys its pool by scheme and authority, which
//! it hashes and formats on every request; a pool that serves one address
//! needs none of that: idle connections wait in a list, the newest taken
//! first. A connection goes back to the list once its answer's body has
//! been read to its end; one whose body is dropped before then is closed
//! (HTTP/1.1 cannot abandon an answer half-read and go on).

use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Frame;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use mecha_invoke::body::{self, Body, BoxError};

/// Idle connections kept per address; more are closed when their answer
/// ends.
const MAX_IDLE: usize = 256;

/// How long a connection may wait unused and still be taken: below the
/// internal port's idle limit (180 s), so a request never goes out on a
/// connection the other runtime is about to close. An older one is closed
/// when a request's look through the list meets it; one never met again
/// stays open until the other side closes it (there is no timer).
const IDLE_FOR: Duration = Duration::from_secs(90);

/// HTTP/1.1 connections to `address` (`host:port`).
pub struct Pool {
    address: String,
    host: HeaderValue,
    /// Idle connections, with when each became idle.
    idle: Mutex<Vec<(SendRequest<Body>, Instant)>>,
}

impl Pool {
    pub fn new(address: &str) -> Result<Arc<Self>, http::header::InvalidHeaderValue> {
        Ok(Arc::new(Self {
            address: address.to_owned(),
            host: HeaderValue::from_str(address)?,
            idle: Mutex::new(Vec::new()),
        }))
    }

    /// An idle connection that is ready for a request; closed ones are
    /// dropped on the way.
    fn checkout(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().expect("lock");
        let now = Instant::now();
        let mut at = idle.len();
        while at > 0 {
            at -= 1;
            let (sender, since) = &idle[at];
            if sender.is_closed() || now.duration_since(*since) > IDLE_FOR {
                idle.swap_remove(at);
            } else if sender.is_ready() {
                return Some(idle.swap_remove(at).0);
            }
            // Else its last answer is still being finished: it stays.
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Body>) {
        let mut idle = self.idle.lock().expect("lock");
        if idle.len() < MAX_IDLE && !sender.is_closed() {
            idle.push((sender, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<SendRequest<Body>, BoxError> {
        let stream = tokio::net::TcpStream::connect(&self.address).await?;
        stream.set_nodelay(true)?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!("HTTP/1.1 connection ended: {err}");
            }
        });
        sender.ready().await?;
        Ok(sender)
    }

    /// Sends `request` (its URI's path and query are what is sent; `Host`
    /// is the pool's address unless the request has one) on an idle
    /// connection, or a new one. A request that an idle connection could
    /// not take (it closed meanwhile) is sent again on a new one: it was
    /// never written.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<Body>,
    ) -> Result<Response<Body>, BoxError> {
        if request.uri().scheme().is_some() {
            let path = request
                .uri()
                .path_and_query()
                .map_or_else(|| http::uri::PathAndQuery::from_static("/"), Clone::clone);
            *request.uri_mut() = http::Uri::from(path);
        }
        if !request.headers().contains_key(http::header::HOST) {
            request
                .headers_mut()
                .insert(http::header::HOST, self.host.clone());
        }
        let mut sender = match self.checkout() {
            Some(sender) => sender,
            None => self.connect().await?,
        };
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            Err(mut err) => match err.take_message() {
                Some(request) => {
                    sender = self.connect().await?;
                    sender.send_request(request).await?
                }
                None => return Err(err.into_error().into()),
            },
        };
        if http_body::Body::is_end_stream(response.body()) {
            // Nothing to read (HEAD, 204, 304, an empty body): the
            // connection is free now, whether or not the body is polled.
            self.checkin(sender);
            return Ok(response.map(|_| body::empty()));
        }
        let pool = Arc::downgrade(self);
        Ok(response.map(|incoming| {
            body::boxed(Returning {
                incoming,
                sender: Some(sender),
                pool,
            })
        }))
    }
}

/// An answer's body that gives its connection back to the pool at its end.
struct Returning {
    incoming: hyper::body::Incoming,
    sender: Option<SendRequest<Body>>,
    pool: Weak<Pool>,
}

impl Returning {
    fn done(&mut self) {
        if let (Some(sender), Some(pool)) = (self.sender.take(), self.pool.upgrade()) {
            pool.checkin(sender);
        }
    }
}

impl http_body::Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.incoming).poll_frame(cx));
        match &frame {
            None => this.done(),
            Some(Ok(_)) if this.incoming.is_end_stream() => this.done(),
            // A failed body: its connection is not reused.
            Some(Err(_)) => this.sender = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;

    use super::*;

    /// A real HTTP/1.1 server on loopback that counts the connections it
    /// accepted. `/big` streams 1 MiB in 64 KiB chunks, `/empty` is a 204,
    /// anything else a short answer; `keep_alive` false closes each
    /// connection after its answer.
    async fn server(keep_alive: bool) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(
                    |request: Request<hyper::body::Incoming>| async move {
                        let body = match request.uri().path() {
                            "/big" => {
                                let chunks = (0..16).map(|_| {
                                    Ok::<_, Infallible>(Frame::data(Bytes::from(vec![
                                        7u8;
                                        64 * 1024
                                    ])))
                                });
                                body::boxed(http_body_util::StreamBody::new(futures::stream::iter(
                                    chunks,
                                )))
                            }
                            "/empty" => {
                                let mut answer = Response::new(body::empty());
                                *answer.status_mut() = http::StatusCode::NO_CONTENT;
                                return Ok::<_, Infallible>(answer);
                            }
                            path => body::full(format!("answered {path}")),
                        };
                        Ok(Response::new(body))
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (address, accepted)
    }

    fn get(path: &str) -> Request<Body> {
        Request::get(path).body(body::empty()).unwrap()
    }

    async fn text(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_connection_serves_one_request_after_another() {
        let (address, accepted) = server(true).await;
        let pool = Pool::new(&address).unwrap();
        for i in 0..5 {
            let path = format!("/call/{i}");
            let answer = pool
                .send(get(&format!("http://{address}{path}")))
                .await
                .unwrap();
            assert_eq!(text(answer).await, format!("answered {path}"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn concurrent_requests_get_connections_of_their_own() {
        let (address, accepted) = server(true).await;
        let pool = Pool::new(&address).unwrap();
        let (a, b) = tokio::join!(pool.send(get("/a")), pool.send(get("/b")));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(text(a).await, "answered /a");
        assert_eq!(text(b).await, "answered /b");
        // Both went back: two more calls at once need no new one.
        let (c, d) = tokio::join!(pool.send(get("/c")), pool.send(get("/d")));
        assert_eq!(text(c.unwrap()).await, "answered /c");
        assert_eq!(text(d.unwrap()).await, "answered /d");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_dropped_half_read_takes_its_connection_with_it() {
        let (address, accepted) = server(true).await;
        let pool = Pool::new(&address).unwrap();
        let mut big = pool.send(get("/big")).await.unwrap().into_body();
        let first = big.frame().await.unwrap().unwrap();
        assert!(first.is_data());
        drop(big);
        let answer = pool.send(get("/after")).await.unwrap();
        assert_eq!(text(answer).await, "answered /after");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection");
        // Read whole, the big answer's connection goes back.
        let big = pool.send(get("/big")).await.unwrap();
        assert_eq!(
            big.into_body().collect().await.unwrap().to_bytes().len(),
            1 << 20
        );
        let answer = pool.send(get("/again")).await.unwrap();
        assert_eq!(text(answer).await, "answered /again");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_empty_answer_frees_its_connection_unread() {
        let (address, accepted) = server(true).await;
        let pool = Pool::new(&address).unwrap();
        let empty = pool.send(get("/empty")).await.unwrap();
        assert_eq!(empty.status(), http::StatusCode::NO_CONTENT);
        drop(empty);
        let answer = pool.send(get("/next")).await.unwrap();
        assert_eq!(text(answer).await, "answered /next");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn connections_the_server_closed_are_not_used_again() {
        let (address, accepted) = server(false).await;
        let pool = Pool::new(&address).unwrap();
        for i in 0..3 {
            let path = format!("/closing/{i}");
            let answer = pool.send(get(&path)).await.unwrap();
            assert_eq!(text(answer).await, format!("answered {path}"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_unreachable_address_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let pool = Pool::new(&address).unwrap();
        assert!(pool.send(get("/")).await.is_err());
    }
}
