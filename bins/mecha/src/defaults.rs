//! The embedded defaults (DESIGN.md §3): with no `--resources-path`, the
//! runtime loads built-in components kept in the data directory. This is a
//! deliberate difference from daprd, which reads `~/.dapr/components`. The
//! scheduler's store is there even with a resources path that declares
//! none ([`scheduler`]): daprd's scheduler is a service, so Dapr resource
//! folders never name one.

use std::path::Path;
use std::time::Duration;

use mecha_resources::{Component, MetadataItem, MetadataSource};

/// Where the embedded components come from, in messages.
pub const EMBEDDED: &str = "<embedded defaults>";

/// The name of the embedded scheduler store.
pub const SCHEDULER: &str = "scheduler";

/// A component of the embedded defaults.
fn component(name: &str, type_name: &str, metadata: &[(&str, String)]) -> Component {
    Component {
        name: name.into(),
        namespace: None,
        type_name: type_name.into(),
        version: "v1".into(),
        init_timeout: Duration::from_secs(5),
        ignore_errors: false,
        metadata: metadata
            .iter()
            .map(|(name, value)| MetadataItem {
                name: (*name).into(),
                source: MetadataSource::Value(value.clone()),
            })
            .collect(),
        secret_store: None,
        scopes: vec![],
        file: EMBEDDED.into(),
    }
}

fn file(data_dir: &Path, name: &str) -> String {
    data_dir.join(name).to_string_lossy().into_owned()
}

/// The embedded scheduler store: jobs (and, later, reminders) in
/// `scheduler.db`, shared by the runtimes of this host.
pub fn scheduler(data_dir: &Path) -> Component {
    component(
        SCHEDULER,
        "scheduler.sqlite",
        &[("connectionString", file(data_dir, "scheduler.db"))],
    )
}

/// The built-in components for `data_dir`.
pub fn components(data_dir: &Path) -> Vec<Component> {
    let file = |name: &str| file(data_dir, name);
    vec![
        // The names `dapr init` gives its components.
        component(
            "statestore",
            "state.sqlite",
            &[
                ("connectionString", file("state.db")),
                ("actorStateStore", "true".into()),
            ],
        ),
        // Shared by the runtimes of this host through the data directory.
        component(
            "pubsub",
            "pubsub.sqlite",
            &[("connectionString", file("pubsub.db"))],
        ),
        // Shared by the runtimes of this host, as the broker is.
        component(
            "lockstore",
            "lock.sqlite",
            &[("connectionString", file("lock.db"))],
        ),
        scheduler(data_dir),
    ]
}
