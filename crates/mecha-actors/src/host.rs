//! The actor runtime as a service of the runtime: once the runtime is
//! ready, it asks an HTTP app what it hosts (`GET /dapr/config`, asked
//! again while the app warms up), joins placement with those types (only
//! now, so placement never sends calls to an app that is not ready), and
//! deactivates idle actors every `actorScanInterval`. A gRPC app says what
//! it hosts when it opens its actor stream (`stream.rs`), and hosts it
//! until the stream ends. When the runtime stops, its active actors are
//! deactivated, their calls in flight first.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Method;
use mecha_core::{HostStatus, Service};
use mecha_invoke::{ChannelError, InvokeRequest, body};
use tokio_util::sync::CancellationToken;

use crate::{ActorApp, ActorConfig, Actors};

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
    stop: CancellationToken,
}

impl ActorHost {
    pub fn new(host: Arc<dyn HostStatus>, actors: Actors, has_state_store: HasStateStore) -> Self {
        let stop = CancellationToken::new();
        let _ = actors.inner.link.set(Link {
            host: host.clone(),
            has_state_store,
            stop: stop.clone(),
        });
        Self { host, actors, stop }
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

/// What hosting actors takes from the runtime (set by [`ActorHost`]).
pub(crate) struct Link {
    host: Arc<dyn HostStatus>,
    has_state_store: HasStateStore,
    /// Cancelled when the runtime stops.
    stop: CancellationToken,
}

/// The app's hosting now.
#[derive(Default)]
pub(crate) struct Hosted {
    /// Counts the app's configurations (its streams, for a gRPC app).
    generation: u64,
    /// Stops the reminder loops of this hosting.
    reminders: Option<CancellationToken>,
    /// The reminder loops, each ending once its fires in flight settled.
    loops: Vec<tokio::task::JoinHandle<()>>,
}

impl Actors {
    /// Hosts `config`'s types in place of what was hosted: the app's
    /// configuration, or that of the stream `app` it opened (which from now
    /// on takes the calls). The generation of this hosting.
    pub(crate) async fn host_types(
        &self,
        config: ActorConfig,
        app: Option<Arc<dyn ActorApp>>,
    ) -> Result<u64, String> {
        let link = self
            .inner
            .link
            .get()
            .ok_or("the actor runtime is not started")?;
        let has_store = (link.has_state_store)(link.host.as_ref());
        if !config.entities.is_empty() && !has_store {
            if app.is_some() {
                return Err("no state store is marked actorStateStore: \"true\"".into());
            }
            tracing::warn!(
                types = ?config.entities,
                "the app hosts actors, but no state store is marked actorStateStore: \"true\"; \
                 hosting none (as daprd)"
            );
        }
        let hosting = !config.entities.is_empty() && has_store;
        let mut hosted = self.inner.hosted.lock().await;
        if link.stop.is_cancelled() {
            return Err("the runtime is stopping".into());
        }
        if let Some(old) = hosted.reminders.take() {
            old.cancel();
        }
        hosted.generation += 1;
        if let Some(app) = app {
            *self.inner.app.write().expect("actor app") = Some(app);
        }
        let entities = config.entities.clone();
        self.set_config(config, hosting);
        if hosting || self.inner.seams.placing.status().joined {
            // Joins placement, or reports the types to it (none, when an
            // app that hosted some hosts none now).
            self.join();
        }
        if hosting {
            tracing::info!(types = ?entities, "hosting actors");
            let reminders = link.stop.child_token();
            hosted.loops.retain(|running| !running.is_finished());
            hosted.loops.extend(fire_reminders(
                self,
                link.host.as_ref(),
                &entities,
                &reminders,
            ));
            hosted.reminders = Some(reminders);
        }
        Ok(hosted.generation)
    }

    /// The app's stream of `generation` is gone: unless another replaced
    /// it, the app hosts nothing now, and placement moves its actors away.
    pub(crate) async fn disconnect(&self, generation: u64) {
        let mut hosted = self.inner.hosted.lock().await;
        if hosted.generation != generation {
            return;
        }
        hosted.generation += 1;
        if let Some(old) = hosted.reminders.take() {
            old.cancel();
        }
        *self.inner.app.write().expect("actor app") = None;
        let was_hosting = self.hosting();
        self.set_config(ActorConfig::default(), false);
        if was_hosting {
            tracing::info!("the app's actor stream closed: hosting no actors");
            self.inner.seams.placing.leave(LEAVE_WAIT).await;
        }
        // The app cannot be told (it has no stream now): whatever is left is
        // let go, before another stream can take over.
        self.deactivate_where(|_| false, Some(Duration::ZERO)).await;
        drop(hosted);
    }

    /// Lets the app's stream go, if it has one (the runtime stops): the
    /// stream ends, and its end changes nothing more.
    async fn let_stream_go(&self) {
        if !self.inner.seams.http_app {
            let mut hosted = self.inner.hosted.lock().await;
            hosted.generation += 1;
            *self.inner.app.write().expect("actor app") = None;
        }
    }
}

/// How long a disconnected app's runtime waits for placement to move its
/// actors away.
const LEAVE_WAIT: Duration = Duration::from_secs(10);

/// Claims and fires the reminders of `types`, with the other runtimes
/// hosting them (a leased claim per tick), until `stop`: the loops.
fn fire_reminders(
    actors: &Actors,
    host: &dyn HostStatus,
    types: &[String],
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let scheduler = host
        .components()
        .all::<mecha_scheduler::SchedulerBlock>()
        .next()
        .cloned();
    let Some(scheduler) = scheduler else {
        tracing::warn!("no scheduler store: actor reminders cannot fire");
        return Vec::new();
    };
    types
        .iter()
        .map(|actor_type| actors.fire_reminders(&scheduler, actor_type, stop))
        .collect()
}

#[async_trait]
impl Service for ActorHost {
    fn name(&self) -> &'static str {
        "actors"
    }

    async fn start(&self) -> anyhow::Result<()> {
        let (host, actors) = (self.host.clone(), self.actors.clone());
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
            if let Err(err) = actors.host_types(config, None).await {
                tracing::error!("hosting actors: {err}");
            }
            let mut scanned = tokio::time::Instant::now();
            loop {
                // A new configuration (an actor stream's app) brings its
                // own interval at once, counted from the last scan.
                let reconfigured = actors.inner.configured_notify.notified();
                let scan = actors
                    .config()
                    .scan_interval
                    .max(Duration::from_millis(100));
                tokio::select! {
                    () = tokio::time::sleep_until(scanned + scan) => {
                        actors.deactivate_idle().await;
                        scanned = tokio::time::Instant::now();
                    }
                    () = reconfigured => {}
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
        // The reminder loops claim no more; their fires in flight settle
        // (a claim left behind would hold its reminder for a lease).
        let loops = std::mem::take(&mut self.actors.inner.hosted.lock().await.loops);
        let rest = grace.saturating_sub(started.elapsed());
        let _ = tokio::time::timeout(rest, crate::join_tasks(loops)).await;
        let rest = grace.saturating_sub(started.elapsed());
        self.actors.deactivate_where(|_| false, Some(rest)).await;
        self.actors.let_stream_go().await;
        self.actors.inner.handed_over.cancel();
    }
}
