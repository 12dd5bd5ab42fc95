//! Dapr's time formats for jobs (and `bindings.cron`): schedules (a cron
//! expression with seconds, a descriptor such as `@daily`, or
//! `@every <Go duration>`) and points in time (`dueTime`, `ttl`: RFC 3339,
//! a Go duration, or an ISO 8601 duration without repetitions). Every time
//! is UTC.

use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, Months, Utc};

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
    /// Parses a schedule as `bindings.cron` takes it: seconds optional.
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
        // croner knows the other descriptors but not this one.
        let pattern = if text == "@midnight" { "@daily" } else { text };
        let cron = croner::Cron::from_str(pattern)
            .map_err(|err| format!("invalid schedule format '{text}': {err}"))?;
        if !fires_within(&cron, FIRES_WITHIN_YEARS) {
            return Err(format!(
                "invalid schedule format '{text}': it never fires in the next {FIRES_WITHIN_YEARS} years"
            ));
        }
        Ok(Self::Cron(Box::new(cron)))
    }

    /// Parses a job's schedule as daprd's scheduler takes it: a descriptor,
    /// `@every`, or a cron expression of exactly six fields (seconds first).
    pub fn parse_job(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 6 {
            return Err(format!(
                "invalid schedule format '{trimmed}': expected 6 fields (seconds minutes hours day-of-month month day-of-week), got {}",
                trimmed.split_whitespace().count()
            ));
        }
        Self::parse(trimmed)
    }

    /// The next firing strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(interval) => {
                now.checked_add_signed(chrono::Duration::from_std(*interval).ok()?)
            }
            Self::Cron(cron) => cron.find_next_occurrence(&now, false).ok(),
        }
    }

    /// The last firing at or before `now` among those after `tick`, when
    /// there was one: the one fire that stands for every tick missed since
    /// `tick` (a runtime that was down, an app slower than its schedule).
    /// A cron schedule is walked at most `MAX_WALK` ticks; past that, `now`
    /// stands for the missed tick.
    pub fn last_missed(&self, tick: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        const MAX_WALK: usize = 10_000;
        let first = self.next_after(tick)?;
        if first > now {
            return None;
        }
        match self {
            Self::Every(interval) => {
                let step = i64::try_from(interval.as_nanos()).ok()?.max(1);
                let behind = (now - first).num_nanoseconds().unwrap_or(i64::MAX);
                let steps = behind / step;
                Some(first + chrono::Duration::nanoseconds(steps.saturating_mul(step)))
            }
            Self::Cron(_) => {
                let mut last = first;
                for _ in 0..MAX_WALK {
                    match self.next_after(last) {
                        Some(next) if next <= now => last = next,
                        _ => return Some(last),
                    }
                }
                Some(now)
            }
        }
    }
}

/// When a `dueTime` (or the end of a `ttl`) falls, for a job registered at
/// `from`: an RFC 3339 time, or a Go or ISO 8601 duration after `from`.
pub fn parse_time(text: &str, from: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(after) = mecha_core::units::parse_go_duration(text) {
        return chrono::Duration::from_std(after)
            .ok()
            .and_then(|after| from.checked_add_signed(after))
            .ok_or_else(|| format!("'{text}' is too far in the future"));
    }
    if text.starts_with('R') {
        return Err(format!(
            "'{text}': repetitions are not allowed here; use repeats"
        ));
    }
    add_iso8601(text, from).ok_or_else(|| {
        format!("'{text}' is neither an RFC 3339 time, a Go duration nor an ISO 8601 duration")
    })
}

/// The numbers of an ISO 8601 duration part, by unit letter, in order:
/// `None` when a unit is out of order, repeated or unknown.
fn iso_fields(part: &str, units: &[char]) -> Option<Vec<(char, f64)>> {
    let mut fields = Vec::new();
    let (mut number, mut next_unit) = (String::new(), 0);
    for c in part.chars() {
        if c.is_ascii_digit() || c == '.' || c == ',' {
            number.push(if c == ',' { '.' } else { c });
            continue;
        }
        let index = units[next_unit..].iter().position(|unit| *unit == c)? + next_unit;
        fields.push((c, number.parse().ok()?));
        number.clear();
        next_unit = index + 1;
    }
    number.is_empty().then_some(fields)
}

/// `from` plus an ISO 8601 duration (`P1Y2M3DT4H5M6.5S`, `P2W`), years and
/// months on the calendar.
fn add_iso8601(text: &str, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((_, "")) => return None,
        Some((date, time)) => (date, time),
        None => (rest, ""),
    };
    let date = iso_fields(date, &['Y', 'M', 'W', 'D'])?;
    let time = iso_fields(time, &['H', 'M', 'S'])?;
    if date.is_empty() && time.is_empty() {
        return None;
    }
    let months = |n: f64| (n.fract() == 0.0 && n < 1e6).then(|| Months::new(n as u32));
    let mut at = from;
    let mut seconds = 0.0;
    for (unit, n) in date {
        match unit {
            'Y' => at = at.checked_add_months(months(n * 12.0)?)?,
            'M' => at = at.checked_add_months(months(n)?)?,
            'W' => seconds += n * 604_800.0,
            _ => seconds += n * 86_400.0,
        }
    }
    for (unit, n) in time {
        seconds += n * match unit {
            'H' => 3600.0,
            'M' => 60.0,
            _ => 1.0,
        };
    }
    let nanos = seconds * 1e9;
    (nanos.is_finite() && nanos < 9e18)
        .then(|| at.checked_add_signed(chrono::Duration::nanoseconds(nanos as i64)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

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
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
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
        assert_eq!(
            every_five
                .next_after(at("2026-12-01T10:00:02Z"))
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T10:00:05+00:00"
        );
        // Jobs take six fields only.
        assert!(Schedule::parse_job("*/2 * * * *").is_err());
        assert!(Schedule::parse_job("*/2 * * * * *").is_ok());
        assert!(Schedule::parse_job("@every 2s").is_ok());
    }

    #[test]
    fn missed_ticks_coalesce_into_the_last() {
        let every = Schedule::parse("@every 10s").unwrap();
        let tick = at("2026-12-01T10:00:00Z");
        assert_eq!(every.last_missed(tick, at("2026-12-01T10:00:09Z")), None);
        assert_eq!(
            every.last_missed(tick, at("2026-12-01T10:00:35Z")),
            Some(at("2026-12-01T10:00:30Z"))
        );
        let cron = Schedule::parse("0 * * * * *").unwrap();
        assert_eq!(
            cron.last_missed(tick, at("2026-12-01T10:05:30Z")),
            Some(at("2026-12-01T10:05:00Z"))
        );
        assert_eq!(cron.last_missed(tick, at("2026-12-01T10:00:59Z")), None);
    }

    #[test]
    fn times() {
        let from = at("2026-12-01T10:00:00Z");
        assert_eq!(parse_time("1m30s", from), Ok(at("2026-12-01T10:01:30Z")));
        assert_eq!(
            parse_time("2027-01-01T00:00:00+01:00", from),
            Ok(at("2026-12-31T23:00:00Z"))
        );
        assert_eq!(parse_time("PT1S", from), Ok(at("2026-12-01T10:00:01Z")));
        assert_eq!(
            parse_time("P1Y2M3DT4H5M6.5S", from),
            Ok(at("2028-02-04T14:05:06.5Z"))
        );
        assert_eq!(parse_time("P2W", from), Ok(at("2026-12-15T10:00:00Z")));
        for bad in ["R5/PT1S", "P", "PT", "P1H", "PT1D", "P1M1Y", "soon", ""] {
            assert!(parse_time(bad, from).is_err(), "{bad}");
        }
    }
}
