//! How the actor runtime reaches the app's actors: over the app channel
//! (an HTTP app, as the SDKs host actors: `PUT /actors/{type}/{id}/method/
//! {method}` and `DELETE /actors/{type}/{id}`), or over the stream a gRPC
//! app opened (`stream.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use http::Method;
use mecha_core::ApiError;
use mecha_invoke::{AppChannel, InvokeRequest, InvokeResponse, body};

use crate::{ActorRef, errors};

/// The header with which an app marks a 200 answer as the actor's error.
pub(crate) const ERROR_RESPONSE: &str = "x-daprerrorresponseheader";

/// The app's side of its actors.
#[async_trait]
pub trait ActorApp: Send + Sync {
    /// Calls the method `req.method` of `actor` and reads the answer whole:
    /// a 200 answer, or one the app marked as the actor's own error
    /// (`X-Daprerrorresponseheader`), which the caller gets as it is.
    /// `fire` marks a timer's or reminder's call (`timer/{name}`,
    /// `remind/{name}` with the fire's JSON body).
    async fn call(
        &self,
        actor: &ActorRef,
        req: InvokeRequest,
        fire: bool,
    ) -> Result<InvokeResponse, ApiError>;

    /// Tells the app that `actor` is deactivated.
    async fn deactivate(&self, actor: &ActorRef) -> Result<(), String>;
}

/// An app hosting actors behind its HTTP app channel.
pub(crate) struct HttpApp {
    pub channel: Arc<dyn AppChannel>,
    /// The most of an answer that is read.
    pub max_answer: usize,
}

#[async_trait]
impl ActorApp for HttpApp {
    async fn call(
        &self,
        actor: &ActorRef,
        mut req: InvokeRequest,
        _fire: bool,
    ) -> Result<InvokeResponse, ApiError> {
        // An HTTP app tells fires by their path, as daprd calls them.
        let method = std::mem::take(&mut req.method);
        req.verb = Method::PUT;
        req.method = format!(
            "actors/{}/{}/method/{}",
            segment(&actor.actor_type),
            segment(&actor.actor_id),
            method_path(&method)
        );
        let response = self
            .channel
            .invoke(req)
            .await
            .map_err(|err| errors::invoke_method(err.to_string()))?;
        let data = body::collect(response.body, self.max_answer)
            .await
            .map_err(|err| errors::invoke_method(format!("reading the app's answer: {err}")))?;
        let status = response.status;
        if status != http::StatusCode::OK && !response.headers.contains_key(ERROR_RESPONSE) {
            // As daprd: an answer other than 200 is an error.
            if status == http::StatusCode::NOT_FOUND {
                return Err(errors::invoke_method(format!(
                    "actor method not found: actors/{}/{}/method/{method}",
                    actor.actor_type, actor.actor_id
                )));
            }
            return Err(errors::invoke_method(format!(
                "error from actor service: ({}) {}",
                status.as_u16(),
                String::from_utf8_lossy(&data)
            )));
        }
        Ok(InvokeResponse {
            status: response.status,
            headers: response.headers,
            body: body::full(data),
            grpc_status: response.grpc_status,
        })
    }

    async fn deactivate(&self, actor: &ActorRef) -> Result<(), String> {
        let req = InvokeRequest::new(
            Method::DELETE,
            format!(
                "actors/{}/{}",
                segment(&actor.actor_type),
                segment(&actor.actor_id)
            ),
            body::empty(),
        );
        match self.channel.invoke(req).await {
            Ok(response) if response.status.is_success() => Ok(()),
            Ok(response) => Err(format!("the app answered {}", response.status.as_u16())),
            Err(err) => Err(err.to_string()),
        }
    }
}

/// A path segment, percent-encoded.
fn segment(text: &str) -> String {
    mecha_core::address::percent_encode(text)
}

/// A method path: each of its segments percent-encoded, its `/`s kept.
fn method_path(text: &str) -> String {
    text.split('/').map(segment).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(method_path("a b/c"), "a%20b/c");
        assert_eq!(segment("plain-id_1.2"), "plain-id_1.2");
    }
}
