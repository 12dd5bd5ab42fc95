//! The configuration API: get items, and subscribe to their changes. On
//! HTTP the runtime pushes each change to the app (`POST
//! /configuration/{store}/{key}`); on gRPC the subscription is the stream
//! the app keeps open ([`ConfigurationUpdates`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use mecha_configuration::{
    ConfigError, ConfigurationBlock, ConfigurationHandle, Metadata, Update, UpdateHandler,
};
pub use mecha_configuration::{Item, Items};
use mecha_core::{ApiError, GrpcCode};
use mecha_invoke::{AppChannel, InvokeRequest};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Api;

impl Api {
    fn configuration_store(&self, store: &str) -> Result<ConfigurationHandle, ApiError> {
        let components = self.runtime().components();
        if !components.has::<ConfigurationBlock>() {
            return Err(ApiError::new(
                "ERR_CONFIGURATION_STORE_NOT_CONFIGURED",
                500,
                GrpcCode::FailedPrecondition,
                "configuration stores not configured",
            ));
        }
        components
            .get::<ConfigurationBlock>(store)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    "ERR_CONFIGURATION_STORE_NOT_FOUND",
                    400,
                    GrpcCode::InvalidArgument,
                    format!("configuration store {store} not found"),
                )
            })
    }

    /// The items of `keys` (every item when empty).
    pub async fn get_configuration(
        &self,
        store: &str,
        keys: Vec<String>,
        metadata: Metadata,
    ) -> Result<Items, ApiError> {
        let configurations = self.configuration_store(store)?;
        configurations.get(&keys, &metadata).await.map_err(|err| {
            configuration_error(
                "ERR_CONFIGURATION_GET",
                GrpcCode::Internal,
                format!("failed to get {keys:?} from Configuration store {store}"),
                err,
            )
        })
    }

    /// Subscribes `handler` to changes of `keys`; the id and the token
    /// that ends the subscription.
    async fn subscribe_configuration_with(
        &self,
        store: &str,
        keys: Vec<String>,
        metadata: Metadata,
        handler: Arc<dyn UpdateHandler>,
    ) -> Result<(String, CancellationToken), ApiError> {
        let configurations = self.configuration_store(store)?;
        let mut keys = keys;
        keys.sort();
        configurations
            .subscribe(&keys, &metadata, handler)
            .await
            .map_err(|err| {
                configuration_error(
                    "ERR_CONFIGURATION_SUBSCRIBE",
                    GrpcCode::InvalidArgument,
                    format!("failed to subscribe {keys:?} from Configuration store {store}"),
                    err,
                )
            })
    }

    /// A subscription whose changes stream to the caller (gRPC
    /// `SubscribeConfiguration`).
    pub async fn subscribe_configuration(
        &self,
        store: &str,
        keys: Vec<String>,
        metadata: Metadata,
    ) -> Result<ConfigurationUpdates, ApiError> {
        let (sender, updates) = mpsc::channel(UPDATES_WAITING);
        let stop = CancellationToken::new();
        let handler = Arc::new(ToStream {
            sender,
            stop: stop.clone(),
        });
        let (id, subscription_stop) = self
            .subscribe_configuration_with(store, keys, metadata, handler)
            .await?;
        // One token ends both: the stream's and the store's subscription.
        {
            let stream_stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stream_stop.cancelled() => subscription_stop.cancel(),
                    _ = subscription_stop.cancelled() => stream_stop.cancel(),
                }
            });
        }
        Ok(ConfigurationUpdates { id, updates, stop })
    }

    /// An HTTP subscription: changes go to the app, one `POST
    /// /configuration/{store}/{key}` per changed key.
    pub async fn subscribe_configuration_to_app(
        &self,
        store: &str,
        keys: Vec<String>,
        metadata: Metadata,
    ) -> Result<String, ApiError> {
        // The store first, as daprd checks.
        self.configuration_store(store)?;
        let Some(channel) = self.app_channel().cloned() else {
            return Err(ApiError::new(
                "ERR_APP_CHANNEL_NIL",
                500,
                GrpcCode::Internal,
                "app channel is not initialized. cannot subscribe to configuration updates",
            ));
        };
        let handler = Arc::new(PushToApp {
            channel,
            store: store.to_owned(),
        });
        let (id, _stop) = self
            .subscribe_configuration_with(store, keys, metadata, handler)
            .await?;
        Ok(id)
    }

    /// Ends a subscription, looked for in `store` or, without one, in every
    /// store. No such subscription is an answer (`Err` with daprd's
    /// message), not an API error.
    pub fn unsubscribe_configuration(
        &self,
        store: Option<&str>,
        id: &str,
    ) -> Result<Result<(), String>, ApiError> {
        let ended = match store {
            Some(store) => self.configuration_store(store)?.unsubscribe(id),
            None => self
                .runtime()
                .components()
                .all::<ConfigurationBlock>()
                .any(|c| c.unsubscribe(id)),
        };
        Ok(if ended {
            Ok(())
        } else {
            Err(format!(
                "failed to unsubscribe to configuration request {id}: subscription does not exist"
            ))
        })
    }

    /// Ends every configuration subscription (at shutdown).
    pub fn close_configuration_subscriptions(&self) {
        for configurations in self.runtime().components().all::<ConfigurationBlock>() {
            configurations.close();
        }
    }
}

/// A store's failure, answered as daprd answers it whatever the cause:
/// 500, with the gRPC code of the call (`INTERNAL` for a get,
/// `INVALID_ARGUMENT` for a subscription).
fn configuration_error(
    code: &'static str,
    grpc: GrpcCode,
    prefix: String,
    err: ConfigError,
) -> ApiError {
    let detail = match err {
        ConfigError::Invalid(problem) => problem,
        ConfigError::Backend(inner) => {
            tracing::warn!(code, error = %format!("{inner:#}"), "configuration store call failed");
            format!("{inner:#}")
        }
    };
    ApiError::new(code, 500, grpc, format!("{prefix}: {detail}"))
}

/// Pushes changes to the app as daprd does: for each changed key, `POST
/// /configuration/{store}/{key}` with the whole update, `{"id", "items"}`.
/// The app answers 200; anything else is logged.
struct PushToApp {
    channel: Arc<dyn AppChannel>,
    store: String,
}

#[async_trait]
impl UpdateHandler for PushToApp {
    async fn update(&self, subscription_id: &str, items: Items) {
        let update = Update {
            id: subscription_id,
            items: &items,
        };
        let body = Bytes::from(serde_json::to_vec(&update).expect("strings serialise"));
        for key in items.keys() {
            let mut req = InvokeRequest::new(
                http::Method::POST,
                format!("configuration/{}/{key}", self.store),
                mecha_invoke::body::full(body.clone()),
            );
            req.headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            match self.channel.invoke(req).await {
                Ok(response) if response.status == http::StatusCode::OK => {}
                Ok(response) => tracing::warn!(
                    status = response.status.as_u16(),
                    store = %self.store,
                    key,
                    "the app did not take a configuration update"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, store = %self.store, key, "cannot push a configuration update to the app")
                }
            }
        }
    }
}

/// Changes waiting to go out on one subscription stream.
const UPDATES_WAITING: usize = 64;

/// A configuration subscription that streams to its caller: its id, then
/// the items of each change. Dropping it ends the subscription; ending the
/// subscription (`UnsubscribeConfiguration`, shutdown) ends the stream.
pub struct ConfigurationUpdates {
    pub id: String,
    updates: mpsc::Receiver<Items>,
    stop: CancellationToken,
}

impl Stream for ConfigurationUpdates {
    type Item = Items;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Items>> {
        // An ended subscription drops its handler, and with it the last
        // sender: the stream then ends.
        if self.stop.is_cancelled() {
            return Poll::Ready(None);
        }
        self.updates.poll_recv(cx)
    }
}

impl Drop for ConfigurationUpdates {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Queues a subscription's changes for its [`ConfigurationUpdates`].
struct ToStream {
    sender: mpsc::Sender<Items>,
    stop: CancellationToken,
}

#[async_trait]
impl UpdateHandler for ToStream {
    async fn update(&self, _subscription_id: &str, items: Items) {
        if self.sender.send(items).await.is_err() {
            // The caller went away: end the subscription.
            self.stop.cancel();
        }
    }
}
