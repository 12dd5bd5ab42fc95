//! The streaming body of invocations, independent of any web framework.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};

/// Any error a body stream can fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming body: chunks of bytes, possibly trailers, never buffered
/// whole unless a step needs it.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A body that keeps something (a slot, a count of requests in flight)
/// until it has been sent or dropped.
pub struct Guarded<B, G> {
    body: B,
    _guard: G,
}

impl<B, G> Guarded<B, G> {
    pub fn new(body: B, guard: G) -> Self {
        Self {
            body,
            _guard: guard,
        }
    }
}

impl<B: http_body::Body + Unpin, G: Unpin> http_body::Body for Guarded<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The error of a body cut off at a size limit.
#[derive(Debug, thiserror::Error)]
#[error("stream too large: the body exceeds the limit of {limit} bytes (--max-body-size)")]
pub struct TooLarge {
    pub limit: usize,
}

/// Limits a body to `limit` bytes: past it, the stream fails with
/// [`TooLarge`] (and whoever reads it stops).
pub fn limited(body: Body, limit: usize) -> Body {
    http_body_util::Limited::new(body, limit)
        .map_err(move |err| -> BoxError {
            if err.is::<http_body_util::LengthLimitError>() {
                Box::new(TooLarge { limit })
            } else {
                err
            }
        })
        .boxed_unsync()
}

/// Reads a whole body (for steps that need it whole: a state save, a gRPC
/// `OnInvoke` message), up to `limit` bytes; past it, fails with
/// [`TooLarge`]. The bytes go into one buffer, sized from the body's
/// declared length: a body in many chunks is copied once as it arrives,
/// never held twice (chunks, then their concatenation). A body in one
/// chunk is kept as it is.
pub async fn collect<B>(body: B, limit: usize) -> Result<Bytes, BoxError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let declared = body.size_hint().exact().unwrap_or(0).min(limit as u64) as usize;
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(Into::into)?.into_data() else {
            continue;
        };
        let held = first.as_ref().map_or(0, Bytes::len) + buffer.len();
        if held + data.len() > limit {
            return Err(Box::new(TooLarge { limit }));
        }
        if data.is_empty() {
            continue;
        }
        match first.take() {
            None if buffer.is_empty() => first = Some(data),
            None => buffer.extend_from_slice(&data),
            Some(earlier) => {
                buffer.reserve(declared.max(earlier.len() + data.len()));
                buffer.extend_from_slice(&earlier);
                buffer.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buffer.freeze()))
}

/// Reads and discards up to `cap` bytes of a body the runtime refuses, so
/// the client, still sending it, gets the answer instead of a reset
/// connection.
pub async fn drain(body: Body, cap: usize) {
    let _ = limited(body, cap).collect().await;
}

/// True when an error's text says a body passed its limit (for errors that
/// crossed a boundary as text).
pub fn is_too_large_text(text: &str) -> bool {
    text.contains("stream too large")
}

/// True when `err` (or its source chain) is a [`TooLarge`].
pub fn is_too_large(err: &(dyn std::error::Error + 'static)) -> bool {
    cause::<TooLarge>(err).is_some()
}

/// The first error of type `T` in `err`'s source chain.
pub fn cause<'e, T: std::error::Error + 'static>(
    err: &'e (dyn std::error::Error + 'static),
) -> Option<&'e T> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}
