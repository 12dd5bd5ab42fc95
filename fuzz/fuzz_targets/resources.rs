//! Resource files: YAML documents of every kind (Component, Subscription,
//! Configuration, Resiliency, ...), read as the loader reads a file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mecha_resources::{LoadOptions, Report, Resources, parse_documents};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut resources = Resources::default();
    let mut report = Report::default();
    parse_documents(
        std::path::Path::new("fuzz.yaml"),
        text,
        &LoadOptions::default(),
        &mut resources,
        &mut report,
    );
});
