//! Dapr's times for actor timers and reminders: `dueTime` and `ttl` as RFC
//! 3339, Go or ISO 8601 durations (`mecha_scheduler::schedule::parse_time`),
//! and `period` as a Go duration or an ISO 8601 duration with optional
//! repetitions (`R5/PT1S`).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How a timer or reminder repeats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Period {
    /// The interval; `None` fires once.
    pub every: Option<Duration>,
    /// How many fires in all (`Rn/`); `None` without a limit.
    pub repeats: Option<u32>,
}

impl Period {
    /// Reads a `period`: empty or zero fires once.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        let (repeats, duration) = match text.strip_prefix('R') {
            Some(rest) => {
                let (count, duration) = rest
                    .split_once('/')
                    .ok_or_else(|| format!("unsupported duration format: {text}"))?;
                let count: u32 = count
                    .parse()
                    .map_err(|_| format!("unsupported duration format: {text}"))?;
                if count == 0 {
                    return Err("has zero repetitions".into());
                }
                (Some(count), duration)
            }
            None => (None, text),
        };
        let every = match mecha_core::units::parse_go_duration(duration) {
            Ok(every) => every,
            Err(_) => iso_duration(duration)
                .ok_or_else(|| format!("unsupported duration format: {text}"))?,
        };
        Ok(Self {
            every: Some(every).filter(|every| !every.is_zero()),
            repeats,
        })
    }

    /// The period as a job's schedule (`@every`), and its repeats.
    pub fn schedule(&self) -> Option<String> {
        self.every
            .map(|every| format!("@every {}", mecha_core::units::format_go_duration(every)))
    }
}

/// An ISO 8601 duration of fixed length (weeks, days, hours, minutes,
/// seconds); years and months, whose length depends on the calendar, are
/// refused.
fn iso_duration(text: &str) -> Option<Duration> {
    let rest = text.strip_prefix('P')?;
    let date = rest.split_once('T').map_or(rest, |(date, _)| date);
    if date.contains(['Y', 'M']) {
        return None;
    }
    let from = DateTime::<Utc>::UNIX_EPOCH;
    let to = mecha_scheduler::schedule::parse_time(text, from).ok()?;
    (to - from).to_std().ok()
}

/// When `text` (a `dueTime`) falls, from `now`; empty is now.
pub fn due(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if text.trim().is_empty() {
        return Ok(now);
    }
    mecha_scheduler::schedule::parse_time(text, now)
        .map_err(|_| format!("unsupported time/duration format: {}", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_in_dapr_formats() {
        let every = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(Period::parse("").unwrap(), Period::default());
        assert_eq!(Period::parse("0s").unwrap(), Period::default());
        assert_eq!(Period::parse("1m").unwrap().every, every(60));
        assert_eq!(Period::parse("PT1M30S").unwrap().every, every(90));
        assert_eq!(Period::parse("P1DT1S").unwrap().every, every(86_401));
        assert_eq!(
            Period::parse("R5/PT2S").unwrap(),
            Period {
                every: every(2),
                repeats: Some(5)
            }
        );
        assert_eq!(Period::parse("R3/1s").unwrap().repeats, Some(3));
        assert_eq!(
            Period::parse("R0/PT1S").unwrap_err(),
            "has zero repetitions"
        );
        for bad in ["soon", "P1M", "R/PT1S", "PT", "R2"] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Period::parse("PT1M").unwrap().schedule().as_deref(),
            Some("@every 1m0s")
        );
    }

    #[test]
    fn due_times() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(due("", now).unwrap(), now);
        assert_eq!((due("3s", now).unwrap() - now).num_seconds(), 3);
        assert_eq!((due("PT1H", now).unwrap() - now).num_seconds(), 3600);
        assert!(due("2030-01-01T00:00:00Z", now).is_ok());
        assert!(due("later", now).is_err());
    }
}
