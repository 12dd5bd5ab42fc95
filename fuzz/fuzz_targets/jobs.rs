//! Jobs as apps give them: the HTTP API's job body (first byte even), and a
//! job's schedule, due time, ttl and repeats (first byte odd; one per line)
//! through the scheduler's checks, then a few fires, failures and missed
//! ticks of the record it makes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mecha_scheduler::{Job, Record};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        mecha_api_http::fuzzing::job(rest);
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut lines = text.split('\n');
    let mut field = || lines.next().filter(|l| !l.is_empty()).map(str::to_owned);
    let job = Job {
        name: "fuzz".into(),
        schedule: field(),
        due_time: field(),
        ttl: field(),
        repeats: field().and_then(|n| n.parse().ok()),
        ..Job::default()
    };
    let now = 1_800_000_000_000;
    let Ok(mut record) = Record::new(job, now) else {
        return;
    };
    let mut at = record.first_due().unwrap_or(now);
    for step in 0..8 {
        record.catch_up(at.saturating_add(step * 1_000_000));
        let fired = record.tick;
        let failed = step % 3 == 0;
        let next = if failed {
            record.clone().after_failure(at)
        } else {
            record.clone().after_success(at)
        };
        let Some((due, next)) = next else {
            return;
        };
        if failed && next.attempt > 0 {
            assert!(due >= at, "a retry before the failure");
        } else {
            assert!(due > fired, "the next tick is not after the one fired");
        }
        at = due;
        record = next;
    }
});
