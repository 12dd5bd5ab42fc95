//! daprd's `--log-level` and `--log-as-json`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init(level: &str, json: bool) {
    let level = match level {
        "fatal" => "error",
        other => other,
    };
    // RUST_LOG, when set, refines the level for debugging.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}
