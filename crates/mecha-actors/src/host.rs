//! The actor runtime as a service of the runtime: once the runtime is
//! ready, it asks the app what it hosts (`GET /dapr/config`, asked again
//! while the app warms up), joins placement with those types (only now, so
//! placement never sends calls to an app that is not ready), and
//! deactivates idle actors every `actorScanInterval`. When the runtime
//! stops, its active actors are deactivated, their calls in flight first.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Method;
use mecha_core::{HostStatus, Service};
use mecha_invoke::{ChannelError, InvokeRequest, body};
use tokio_util::sync::CancellationToken;

use crate::{ActorConfig, Actors};

/// How long an app that is not ready is asked again for its configuration.
const PATIENCE: Duration = Duration::from_secs(60);
const MAX_WAIT: Duration = Duration::from_secs(1);
/// The most of the app's configuration that is read.
const MAX_CONFIG: usize = 1024 * 1024;

/// Whether the runtime has a store for actor state (one with
/// `actorStateStore: "true"`), asked once its components are built.
pub type HasStateStore = fn(&dyn HostStatus) -> bool;

/// The actor runtime's service.
pub struct ActorHost {
    host: Arc<dyn HostStatus>,
    actors: Actors,
    has_state_store: HasStateStore,
    stop: CancellationToken,
}

impl ActorHost {
    pub fn new(host: Arc<dyn HostStatus>, actors: Actors, has_state_store: HasStateStore) -> Self {
        Self {
            host,
            actors,
            has_state_store,
            stop: CancellationToken::new(),
        }
    }
}

/// What one question to the app gave.
enum Asked {
    Answered(ActorConfig),
    NotYet(String),
}

async fn ask(actors: &Actors) -> Asked {
    let seams = &actors.inner.seams;
    let Some(app) = seams.app.as_ref().filter(|_| seams.http_app) else {
        return Asked::Answered(ActorConfig::default());
    };
    let req = InvokeRequest::new(Method::GET, "dapr/config", body::empty());
    let response = match app.invoke(req).await {
        Ok(response) => response,
        Err(ChannelError::NoApp) => return Asked::Answered(ActorConfig::default()),
        Err(err) => return Asked::NotYet(err.to_string()),
    };
    let status = response.status;
    if status.is_server_error() && status != http::StatusCode::NOT_IMPLEMENTED {
        return Asked::NotYet(format!("status {}", status.as_u16()));
    }
    if !status.is_success() {
        // An app without actors.
        return Asked::Answered(ActorConfig::default());
    }
    match body::collect(response.body, MAX_CONFIG).await {
        Err(err) => Asked::NotYet(err.to_string()),
        Ok(data) => match ActorConfig::parse(&data) {
            Ok(config) => Asked::Answered(config),
            Err(err) => {
                tracing::error!(
                    "the app's actor configuration (GET /dapr/config): {err}; hosting no actors"
                );
                Asked::Answered(ActorConfig::default())
            }
        },
    }
}

/// Asks the app until it answers, for up to [`PATIENCE`].
async fn read_config(actors: &Actors) -> ActorConfig {
    let gave_up_at = tokio::time::Instant::now() + PATIENCE;
    let mut wait = Duration::from_millis(50);
    loop {
        match ask(actors).await {
            Asked::Answered(config) => return config,
            Asked::NotYet(reason) if tokio::time::Instant::now() + wait > gave_up_at => {
                tracing::error!(
                    "the app did not answer GET /dapr/config within {}s ({reason}); hosting no actors",
                    PATIENCE.as_secs()
                );
                return ActorConfig::default();
            }
            Asked::NotYet(reason) => {
                tracing::debug!("waiting for the app's actor configuration: {reason}");
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_WAIT);
    }
}

/// Claims and fires the reminders of every type this runtime hosts, with
/// the other runtimes hosting them (a leased claim per tick).
fn fire_reminders(actors: &Actors, host: &dyn HostStatus, stop: &CancellationToken) {
    let scheduler = host
        .components()
        .all::<mecha_scheduler::SchedulerBlock>()
        .next()
        .cloned();
    let Some(scheduler) = scheduler else {
        tracing::warn!("no scheduler store: actor reminders cannot fire");
        return;
    };
    for actor_type in &actors.config().entities {
        actors.fire_reminders(&scheduler, actor_type, stop);
    }
}

#[async_trait]
impl Service for ActorHost {
    fn name(&self) -> &'static str {
        "actors"
    }

    async fn start(&self) -> anyhow::Result<()> {
        let (host, actors) = (self.host.clone(), self.actors.clone());
        let has_state_store = self.has_state_store;
        let stop = self.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = host.wait_ready() => {}
                () = stop.cancelled() => return,
            }
            let config = tokio::select! {
                config = read_config(&actors) => config,
                () = stop.cancelled() => return,
            };
            let scan = config.scan_interval;
            let hosting = !config.entities.is_empty() && has_state_store(host.as_ref());
            if hosting {
                tracing::info!(types = ?config.entities, "hosting actors");
            } else if !config.entities.is_empty() {
                tracing::warn!(
                    types = ?config.entities,
                    "the app hosts actors, but no state store is marked actorStateStore: \"true\"; \
                     hosting none (as daprd)"
                );
            }
            actors.set_config(config, hosting);
            if !hosting {
                // A caller only: it joins on its first actor call.
                return;
            }
            actors.join();
            fire_reminders(&actors, host.as_ref(), &stop);
            let mut every = tokio::time::interval(scan.max(Duration::from_millis(100)));
            loop {
                tokio::select! {
                    _ = every.tick() => actors.deactivate_idle().await,
                    () = stop.cancelled() => return,
                }
            }
        });
        Ok(())
    }

    /// Hands the actors over before the runtime goes: it reports that it
    /// hosts nothing, and placement's round moves every actor away (this
    /// runtime drains and deactivates them before acknowledging it, and
    /// forwards the calls that still reach it); whatever is left is
    /// deactivated after its calls in flight.
    async fn drain(&self, grace: Duration) {
        self.stop.cancel();
        let started = tokio::time::Instant::now();
        if self.actors.hosting() {
            self.actors.inner.seams.placing.leave(grace).await;
        }
        let rest = grace.saturating_sub(started.elapsed());
        self.actors.deactivate_where(|_| false, Some(rest)).await;
    }
}
