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

/// Reads a whole body (for steps that need it whole, such as a gRPC
/// `OnInvoke` message), up to `limit` bytes.
pub async fn collect(body: Body, limit: usize) -> Result<Bytes, BoxError> {
    Ok(limited(body, limit).collect().await?.to_bytes())
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
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<TooLarge>() {
            return true;
        }
        current = err.source();
    }
    false
}
