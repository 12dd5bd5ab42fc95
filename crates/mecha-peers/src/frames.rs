//! Bodies over the runtime-to-runtime stream: chunks, then an `end` frame.
//! A stream that stops before `end` is a failed body, never a short one.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body::Frame as BodyFrame;
use http_body_util::BodyStream;
use mecha_invoke::body::{Body, BoxError};
use mecha_proto::internal::v1::{InvokeFrame, invoke_frame::Frame};
use tonic::Status;

/// The largest body that travels whole in its head (`Call`, and a small
/// answer): one message each way, no frames, no tasks.
pub const WHOLE_MAX: usize = 64 * 1024;

/// Whether `body` travels whole in its head: its length is known and at
/// most [`WHOLE_MAX`].
pub fn fits_whole(body: &Body) -> bool {
    http_body::Body::size_hint(body)
        .exact()
        .is_some_and(|len| len <= WHOLE_MAX as u64)
}

pub fn chunk(bytes: Bytes) -> InvokeFrame {
    InvokeFrame {
        frame: Some(Frame::Chunk(bytes)),
    }
}

pub fn end() -> InvokeFrame {
    InvokeFrame {
        frame: Some(Frame::End(true)),
    }
}

#[derive(Debug)]
pub enum StreamError {
    CutOff,
    Unexpected,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CutOff => f.write_str("the body stream was cut off before its end"),
            Self::Unexpected => f.write_str("unexpected frame in a body stream"),
        }
    }
}

impl std::error::Error for StreamError {}

/// The rest of a frame stream as a body. After the `end` frame the stream
/// is still read to its close: a side that stops reading early makes HTTP/2
/// reset the stream, and a peer resetting every stream is taken for an
/// attack (h2 closes the connection after about a thousand).
pub struct FrameBody<S> {
    frames: Pin<Box<S>>,
    ended: bool,
    done: bool,
}

pub fn body<S>(frames: S) -> Body
where
    S: Stream<Item = Result<InvokeFrame, Status>> + Send + 'static,
{
    mecha_invoke::body::boxed(FrameBody {
        frames: Box::pin(frames),
        ended: false,
        done: false,
    })
}

impl<S> http_body::Body for FrameBody<S>
where
    S: Stream<Item = Result<InvokeFrame, Status>> + Send,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, BoxError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let next = match self.frames.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            };
            let ended = self.ended;
            return Poll::Ready(match next {
                // The stream closes after `end`: the body is complete.
                None if ended => {
                    self.done = true;
                    None
                }
                Some(Ok(InvokeFrame {
                    frame: Some(Frame::End(_)),
                })) if !ended => {
                    self.ended = true;
                    continue;
                }
                Some(Ok(InvokeFrame {
                    frame: Some(Frame::Chunk(bytes)),
                })) if !ended => Some(Ok(BodyFrame::data(bytes))),
                Some(Ok(_)) => {
                    self.done = true;
                    Some(Err(Box::new(StreamError::Unexpected)))
                }
                Some(Err(status)) => {
                    self.done = true;
                    Some(Err(Box::new(status)))
                }
                None => {
                    self.done = true;
                    Some(Err(Box::new(StreamError::CutOff)))
                }
            });
        }
    }
}

/// The rest of a frame stream as a body, read by a task of its own that
/// always reads the stream to its close, whether or not the body is read
/// to its end (HTTP/1 clients stop at Content-Length). Returns the body and
/// a signal that fires once the stream is closed.
pub fn pumped_body<S>(mut frames: S) -> (Body, tokio::sync::oneshot::Receiver<()>)
where
    S: Stream<Item = Result<InvokeFrame, Status>> + Send + Unpin + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut forwarding = true;
        while let Some(item) = frames.next().await {
            let last = matches!(
                &item,
                Ok(InvokeFrame {
                    frame: Some(Frame::End(_))
                }) | Err(_)
            );
            if forwarding && tx.send(item).await.is_err() {
                // Nobody reads the body any more: drain the rest.
                forwarding = false;
            }
            if last {
                forwarding = false;
            }
        }
        drop(tx);
        let _ = closed_tx.send(());
    });
    (
        body(tokio_stream::wrappers::ReceiverStream::new(rx)),
        closed_rx,
    )
}

/// A plain HTTP/2 answer's body (`first`, then the rest of `incoming`),
/// read by a task of its own to the end of its stream whether or not the
/// body is read to its end, as [`pumped_body`] does for frame streams. A
/// reset stream fails the body.
pub fn pumped_raw(first: Bytes, mut incoming: Body) -> Body {
    use http_body_util::BodyExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<BodyFrame<Bytes>, BoxError>>(4);
    tokio::spawn(async move {
        let mut forwarding = first.is_empty() || tx.send(Ok(BodyFrame::data(first))).await.is_ok();
        while let Some(frame) = incoming.frame().await {
            // Trailers are not carried, as on the streamed path.
            if frame.as_ref().is_ok_and(|frame| !frame.is_data()) {
                continue;
            }
            let last = frame.is_err();
            if forwarding && tx.send(frame).await.is_err() {
                // Nobody reads the body any more: drain the rest.
                forwarding = false;
            }
            if last {
                break;
            }
        }
    });
    mecha_invoke::body::boxed(http_body_util::StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ))
}

/// A body as frames: its data in chunks, then `end`; a failing body stops
/// with the error (and no `end`). Trailers are not carried.
pub fn frames(body: Body) -> impl Stream<Item = Result<InvokeFrame, BoxError>> + Send {
    let data = BodyStream::new(body).filter_map(|frame| async move {
        match frame {
            Ok(frame) => frame
                .into_data()
                .ok()
                .filter(|b| !b.is_empty())
                .map(|b| Ok(chunk(b))),
            Err(err) => Some(Err(err)),
        }
    });
    data.chain(futures::stream::once(async { Ok(end()) }))
        .scan(false, |failed, item| {
            // Nothing follows an error, not even `end`.
            if *failed {
                return futures::future::ready(None);
            }
            *failed = item.is_err();
            futures::future::ready(Some(item))
        })
}
