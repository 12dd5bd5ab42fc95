//! SQLite components: `state.sqlite`, `pubsub.sqlite`, `lock.sqlite` and
//! `nameresolution.sqlite`. SQLite is the embedded default backend
//! (DESIGN.md §3): durable, shared by the runtimes of one host through the
//! data directory, and needing no external service.

mod connection;
mod lock;
mod nameresolution;
mod pubsub;
mod state;

pub use lock::{LockConfig, SqliteLockFactory, SqliteLockStore};
pub use nameresolution::{NameResolutionConfig, SqliteNameResolutionFactory, SqliteNameResolver};
pub use pubsub::{PubSubConfig, SqlitePubSub, SqlitePubSubFactory};
pub use state::{SqliteStateFactory, SqliteStateStore, StateConfig};
