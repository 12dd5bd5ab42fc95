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

/// The rest of a frame stream as a body.
pub struct FrameBody<S> {
    frames: Pin<Box<S>>,
    done: bool,
}

pub fn body<S>(frames: S) -> Body
where
    S: Stream<Item = Result<InvokeFrame, Status>> + Send + 'static,
{
    mecha_invoke::body::boxed(FrameBody {
        frames: Box::pin(frames),
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
        if self.done {
            return Poll::Ready(None);
        }
        match self.frames.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(InvokeFrame {
                frame: Some(Frame::Chunk(bytes)),
            }))) => Poll::Ready(Some(Ok(BodyFrame::data(bytes)))),
            Poll::Ready(Some(Ok(InvokeFrame {
                frame: Some(Frame::End(_)),
            }))) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(_))) => {
                self.done = true;
                Poll::Ready(Some(Err(Box::new(StreamError::Unexpected))))
            }
            Poll::Ready(Some(Err(status))) => {
                self.done = true;
                Poll::Ready(Some(Err(Box::new(status))))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(Some(Err(Box::new(StreamError::CutOff))))
            }
        }
    }
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
