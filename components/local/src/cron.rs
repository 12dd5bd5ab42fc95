//! `bindings.cron`: an input binding that fires on a schedule — a cron
//! expression with optional seconds (`*/5 * * * * *`, `0 30 9 * * MON`),
//! a descriptor (`@hourly`, `@daily`, ...) or `@every <duration>` (Go's
//! syntax, `@every 1s`, `@every 1m30s`). Each firing is an event with no
//! data and the metadata `timeZone` and `readTimeUTC`, as daprd's; each is
//! delivered on its own, so a slow app never delays the schedule. The
//! schedule runs in UTC.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mecha_bindings::*;
use mecha_core::{ComponentContext, ComponentFactory, MetadataReader};
pub use mecha_scheduler::schedule::Schedule;
use tokio_util::sync::CancellationToken;

pub const BINDINGS_CRON: ComponentFactory<dyn Binding, Option<Schedule>> =
    ComponentFactory::new("bindings.cron", configure, |schedule| {
        Box::pin(connect(schedule))
    });

fn configure(
    _version: &str,
    metadata: &MetadataReader<'_>,
    _ctx: &ComponentContext,
) -> Option<Schedule> {
    let text = metadata.string("schedule");
    match text {
        None => {
            metadata.error("schedule not set");
            None
        }
        Some(text) => Schedule::parse(&text)
            .map_err(|err| metadata.error(err))
            .ok(),
    }
}

async fn connect(schedule: Option<Schedule>) -> anyhow::Result<Arc<dyn Binding>> {
    let schedule = schedule.ok_or_else(|| anyhow::anyhow!("no valid schedule"))?;
    Ok(Arc::new(CronBinding { schedule }))
}

/// The `bindings.cron` binding.
pub struct CronBinding {
    schedule: Schedule,
}

impl CronBinding {
    pub fn new(schedule: Schedule) -> Self {
        Self { schedule }
    }
}

impl Binding for CronBinding {
    fn input(self: Arc<Self>) -> Option<Arc<dyn InputBinding>> {
        Some(self)
    }
}

/// Go's `time.Time.String()` in UTC, as daprd writes `readTimeUTC`.
fn go_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.f +0000 UTC").to_string()
}

#[async_trait]
impl InputBinding for CronBinding {
    async fn read(
        &self,
        handler: Arc<dyn InputHandler>,
        stop: CancellationToken,
    ) -> Result<(), BindingError> {
        let schedule = self.schedule.clone();
        tokio::spawn(async move {
            loop {
                let now = Utc::now();
                let Some(next) = schedule.next_after(now) else {
                    tracing::warn!("cron binding: the schedule has no next firing");
                    return;
                };
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                let event = InputEvent {
                    data: Default::default(),
                    metadata: [
                        ("timeZone".to_owned(), "UTC".to_owned()),
                        ("readTimeUTC".to_owned(), go_time(Utc::now())),
                    ]
                    .into(),
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    if let Err(err) = handler.handle(event).await {
                        tracing::debug!(error = %err, "cron event not taken");
                    }
                });
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_times_as_daprd_writes_them() {
        assert_eq!(
            go_time("2026-12-01T10:00:05Z".parse().unwrap()),
            "2026-12-01 10:00:05 +0000 UTC"
        );
    }
}
