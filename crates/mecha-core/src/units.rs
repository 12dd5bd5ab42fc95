//! Parsers for the units Dapr's flags and metadata use: Go durations
//! (`1h30m`, `500ms`) and Kubernetes quantities (`4Mi`).

use std::time::Duration;

/// Parses a Go `time.ParseDuration` string such as `1h30m`, `1.5s`, `300ms`,
/// `-1s` or `0`. A negative duration is returned as zero, which is how Dapr
/// treats "disabled" intervals.
pub fn parse_go_duration(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let (negative, mut rest) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(format!("invalid duration '{input}'"));
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration '{input}'"))?;
        if number_len == 0 {
            return Err(format!("invalid duration '{input}'"));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| format!("invalid duration '{input}'"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => return Err(format!("unknown unit '{unit}' in duration '{input}'")),
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    if negative || total <= 0.0 {
        return Ok(Duration::ZERO);
    }
    if total > u64::MAX as f64 {
        return Err(format!("duration '{input}' is out of range"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Parses a Go duration, or a bare integer counted in `bare_unit` (Dapr's
/// metadata often accepts `timeout: 20` meaning twenty seconds).
pub fn parse_duration_or_number(input: &str, bare_unit: Duration) -> Result<Duration, String> {
    let text = input.trim();
    if let Ok(number) = text.parse::<i64>() {
        return Ok(bare_unit.saturating_mul(u32::try_from(number.max(0)).unwrap_or(u32::MAX)));
    }
    parse_go_duration(text)
}

/// Parses a Kubernetes resource quantity (`4Mi`, `200M`, `1Gi`, `1024`) into
/// bytes.
pub fn parse_quantity(input: &str) -> Result<u64, String> {
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid quantity '{input}'"))?;
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown suffix '{other}' in quantity '{input}'")),
    };
    let bytes = number * multiplier;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("quantity '{input}' is out of range"));
    }
    Ok(bytes.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("0h0m3s0ms"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("-1s"), Ok(Duration::ZERO));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5x").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("s").is_err());
        assert_eq!(
            parse_duration_or_number("20", Duration::from_secs(1)),
            Ok(Duration::from_secs(20))
        );
    }

    #[test]
    fn go_duration_strings() {
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn rfc3339_with_nanoseconds() {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_764_590_400);
        assert_eq!(format_rfc3339_nanos(at), "2025-12-01T12:00:00Z");
        assert_eq!(
            format_rfc3339_nanos(at + Duration::from_millis(250)),
            "2025-12-01T12:00:00.25Z"
        );
        assert_eq!(
            format_rfc3339_nanos(at + Duration::from_nanos(7)),
            "2025-12-01T12:00:00.000000007Z"
        );
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("4Mi"), Ok(4 * 1024 * 1024));
        assert_eq!(parse_quantity("200Mi"), Ok(200 * 1024 * 1024));
        assert_eq!(parse_quantity("4M"), Ok(4_000_000));
        assert_eq!(parse_quantity("1024"), Ok(1024));
        assert!(parse_quantity("4Xi").is_err());
        assert!(parse_quantity("Mi").is_err());
    }

    proptest! {
        #[test]
        fn duration_parser_never_panics(input in "\\PC{0,24}") {
            let _ = parse_go_duration(&input);
            let _ = parse_duration_or_number(&input, Duration::from_secs(1));
        }

        #[test]
        fn quantity_parser_never_panics(input in "\\PC{0,24}") {
            let _ = parse_quantity(&input);
        }

        #[test]
        fn whole_seconds_round_trip(secs in 0u64..1_000_000) {
            prop_assert_eq!(parse_go_duration(&format!("{secs}s")), Ok(Duration::from_secs(secs)));
        }
    }
}

/// Formats a duration as Go's `time.Duration.String` does for the values
/// Dapr reports: `5s`, `500ms`, `1m30s`, `0s`.
pub fn format_go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos as f64 / 1e3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos as f64 / 1e6));
    }
    let total = duration.as_secs();
    let (hours, minutes) = (total / 3600, total % 3600 / 60);
    let seconds = (nanos % 60_000_000_000) as f64 / 1e9;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", trim_fraction(seconds)));
    out
}

fn trim_fraction(value: f64) -> String {
    let text = format!("{value:.9}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Formats a time as RFC 3339 in UTC with whole seconds
/// (`2026-11-25T10:00:00Z`), as Go's `time.RFC3339` does.
pub fn format_rfc3339(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Formats a time as Go's `time.RFC3339Nano` does in UTC: the fraction of
/// the second without its trailing zeros (`2026-11-25T10:00:00.5Z`).
pub fn format_rfc3339_nanos(time: std::time::SystemTime) -> String {
    let whole = format_rfc3339(time);
    let nanos = time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    if nanos == 0 {
        return whole;
    }
    let fraction = format!("{nanos:09}");
    format!(
        "{}.{}Z",
        whole.trim_end_matches('Z'),
        fraction.trim_end_matches('0')
    )
}

/// Parses an RFC 3339 time (`2026-11-25T10:00:00Z`,
/// `2026-11-25T10:00:00.5+01:00`).
pub fn parse_rfc3339(input: &str) -> Option<std::time::SystemTime> {
    let bytes = input.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let text = input.get(range)?;
        text.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if bytes[13] != b':'
        || bytes[16] != b':'
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &input[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let text = &fraction[..digits.min(9)];
        nanos = text.parse::<u32>().ok()? * 10u32.pow(9 - text.len() as u32);
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let base = std::time::UNIX_EPOCH;
    if secs >= 0 {
        Some(base + Duration::new(secs as u64, nanos))
    } else {
        base.checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod time_tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339() {
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_608_000);
        assert_eq!(format_rfc3339(t), "2026-11-25T12:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661);
        assert_eq!(format_rfc3339(leap), "2000-02-29T01:01:01Z");
        assert_eq!(parse_rfc3339("2000-02-29T01:01:01Z"), Some(leap));
        assert_eq!(parse_rfc3339("2000-02-29T02:01:01+01:00"), Some(leap));
        assert_eq!(
            parse_rfc3339("2000-02-29T01:01:01.25Z"),
            Some(leap + Duration::from_millis(250))
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        for bad in [
            "",
            "2000-02-29",
            "2000-13-01T00:00:00Z",
            "2000-02-29T01:01:01",
            "2000-02-29T01:01:01.Z",
            "x000-02-29T01:01:01Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_round_trips(secs in 0u64..10_000_000_000) {
            let time = UNIX_EPOCH + Duration::from_secs(secs);
            proptest::prop_assert_eq!(parse_rfc3339(&format_rfc3339(time)), Some(time));
        }

        #[test]
        fn rfc3339_parser_never_panics(input in "\\PC{0,40}") {
            let _ = parse_rfc3339(&input);
        }
    }
}
