//! The HTTP API's request bodies, through the routes' own parsers: state
//! save, bulk get and transaction bodies, and bulk publish bodies. The first
//! byte picks the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mecha_api_http::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => fuzzing::state_save(body),
        1 => fuzzing::state_bulk_get(body),
        2 => fuzzing::state_transaction(body),
        _ => fuzzing::bulk_publish(body),
    };
});
