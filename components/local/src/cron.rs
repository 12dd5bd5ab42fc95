//! `bindings.cron`: an input binding that fires on a schedule — a cron
//! expression with optional seconds (`*/5 * * * * *`, `0 30 9 * * MON`),
//! a descriptor (`@hourly`, `@daily`, ...) or `@every <duration>` (Go's
//! syntax, `@every 1s`, `@every 1m30s`). Each firing is an event with no
//! data and the metadata `timeZone` and `readTimeUTC`, as daprd's; each is
//! delivered on its own, so a slow app never delays the schedule. The
//! schedule runs in UTC.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mecha_bindings::*;
use mecha_core::{ComponentContext, ComponentFactory, MetadataReader};
use tokio_util::sync::CancellationToken;

/// How far ahead a cron schedule must fire to be taken: the weekdays of
/// the calendar repeat every 28 years (within a century).
const FIRES_WITHIN_YEARS: u32 = 28;

/// Whether `cron` fires within `years` from today, checked a day at a time
/// (at the day's first time the pattern allows). A schedule that never
/// fires (the 30th of February, a field with no value such as `,`) would
/// make croner's search walk to the year 5000, minutes of work at each
/// firing; daprd's cron gives up after 5 years (and never fires).
fn fires_within(cron: &croner::Cron, years: u32) -> bool {
    /// croner's bit for the values a field lists.
    const LISTED: u8 = 1;
    let first = |field: &croner::CronComponent| field.get_set_values(LISTED).first().copied();
    let pattern = &cron.pattern;
    let (Some(hour), Some(minute), Some(second)) = (
        first(&pattern.hours),
        first(&pattern.minutes),
        first(&pattern.seconds),
    ) else {
        return false;
    };
    let today = Utc::now().date_naive();
    (0..u64::from(years) * 366).any(|day| {
        today
            .checked_add_days(chrono::Days::new(day))
            .and_then(|date| date.and_hms_opt(hour.into(), minute.into(), second.into()))
            .is_some_and(|time| cron.is_time_matching(&time.and_utc()).unwrap_or(false))
    })
}

/// A parsed schedule.
#[derive(Clone, Debug)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(every) = text.strip_prefix("@every") {
            let interval = mecha_core::units::parse_go_duration(every.trim())
                .map_err(|err| format!("invalid schedule format '{text}': {err}"))?;
            if interval.is_zero() {
                return Err(format!(
                    "invalid schedule format '{text}': the interval is zero"
                ));
            }
            return Ok(Self::Every(interval));
        }
        let cron = croner::Cron::from_str(text)
            .map_err(|err| format!("invalid schedule format '{text}': {err}"))?;
        if !fires_within(&cron, FIRES_WITHIN_YEARS) {
            return Err(format!(
                "invalid schedule format '{text}': it never fires in the next {FIRES_WITHIN_YEARS} years"
            ));
        }
        Ok(Self::Cron(Box::new(cron)))
    }

    /// The next firing after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(interval) => Some(now + chrono::Duration::from_std(*interval).ok()?),
            Self::Cron(cron) => cron.find_next_occurrence(&now, false).ok(),
        }
    }
}

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
    fn schedules() {
        assert!(
            matches!(Schedule::parse("@every 1s"), Ok(Schedule::Every(d)) if d == Duration::from_secs(1))
        );
        assert!(
            matches!(Schedule::parse("@every 1m30s"), Ok(Schedule::Every(d)) if d == Duration::from_secs(90))
        );
        for good in [
            "*/5 * * * * *",
            "0 30 9 * * MON",
            "*/2 * * * *",
            "@hourly",
            "@daily",
            // The fifth Monday of a February: next in 2044.
            "0 0 0 * 2 MON#5",
        ] {
            assert!(Schedule::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "@every soon",
            "@every 0s",
            "not cron",
            "61 * * * * *",
            // Never fires: croner alone would search until the year 5000
            // (found by the `durations` fuzz target).
            "0 0 0 30 2 *",
            "\t\t, *\t *\t\t2 \t\t2 \t ,2 *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        let every_five = Schedule::parse("*/5 * * * * *").unwrap();
        let now: DateTime<Utc> = "2026-12-01T10:00:02Z".parse().unwrap();
        assert_eq!(
            every_five.next_after(now).unwrap().to_rfc3339(),
            "2026-12-01T10:00:05+00:00"
        );
        assert_eq!(
            go_time("2026-12-01T10:00:05Z".parse().unwrap()),
            "2026-12-01 10:00:05 +0000 UTC"
        );
    }
}
