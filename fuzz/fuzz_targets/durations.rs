//! Durations, quantities, times and schedules as metadata and requests give
//! them: Go durations (`1h2m3.5s`), numbers or durations (`ttlInSeconds`
//! and the like), quantities (`4Mi`), RFC 3339 times, and the cron binding's
//! schedules (6-field cron, `@every`, `@daily`, ...).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mecha_core::units;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = units::parse_go_duration(text);
    let _ = units::parse_duration_or_number(text, std::time::Duration::from_secs(1));
    let _ = units::parse_quantity(text);
    if let Some(time) = units::parse_rfc3339(text) {
        let _ = units::format_rfc3339(time);
    }
    if let Ok(schedule) = mecha_component_local::Schedule::parse(text) {
        let _ = schedule.next_after(chrono::DateTime::UNIX_EPOCH);
    }
    let _ = mecha_core::metadata::parse_bool(text);
});
