//! The pub/sub building block.
//!
//! - [`PubSub`] is the contract every pub/sub component implements: it
//!   moves bytes through a broker, with consumer groups, acknowledgement and
//!   redelivery.
//! - [`PubSubHandle`] is the block's handle on one configured component: topic
//!   scopes and topic prefixes, applied once for every component.
//! - [`cloudevent`] builds and reads Dapr's CloudEvents; [`routing`] holds
//!   the CEL routing rules; [`Subscriptions`] runs subscriptions, delivering
//!   through a [`Sink`] (the app, or a streaming subscription) with Dapr's
//!   rules for answers, dead letters and bulk delivery.
//! - `conformance` (feature `conformance`) is the suite every component must
//!   pass, expanded into one test per case by [`pubsub_conformance!`].

mod app;
mod block;
mod broker;
mod bulk;
pub mod cloudevent;
mod component;
mod delivery;
pub mod redelivery;
pub mod routing;
mod scopes;
mod set;
pub mod sink;
pub mod subscription;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use app::AppSubscriptions;
pub use block::{PubSubBlock, PubSubSettings};
pub use broker::{PubSubHandle, PublishError, SubscribeError};
pub use component::*;
pub use delivery::PUBSUB_NAME_KEY;
pub use scopes::{ScopeSettings, TopicScopes};
pub use set::{SubscriptionId, Subscriptions};
pub use sink::{AppSubscriber, BulkEvent, BulkOutcome, Event, EventFields, Outcome, Sink};
pub use subscription::{BulkSettings, Kind, SubscriptionSpec};
