//! The embedded defaults (DESIGN.md §3): with no `--resources-path`, the
//! runtime loads built-in components kept in the data directory. This is a
//! deliberate difference from daprd, which reads `~/.dapr/components`.

use std::path::Path;
use std::time::Duration;

use mecha_resources::{Component, MetadataItem, MetadataSource};

/// Where the embedded components come from, in messages.
pub const EMBEDDED: &str = "<embedded defaults>";

/// The built-in components for `data_dir`.
pub fn components(data_dir: &Path) -> Vec<Component> {
    let item = |name: &str, value: String| MetadataItem {
        name: name.into(),
        source: MetadataSource::Value(value),
    };
    let component = |name: &str, type_name: &str, metadata: Vec<MetadataItem>| Component {
        name: name.into(),
        namespace: None,
        type_name: type_name.into(),
        version: "v1".into(),
        init_timeout: Duration::from_secs(5),
        ignore_errors: false,
        metadata,
        secret_store: None,
        scopes: vec![],
        file: EMBEDDED.into(),
    };
    let file = |name: &str| data_dir.join(name).to_string_lossy().into_owned();
    vec![
        // The names `dapr init` gives its components.
        component(
            "statestore",
            "state.sqlite",
            vec![
                item("connectionString", file("state.db")),
                item("actorStateStore", "true".into()),
            ],
        ),
        // Shared by the runtimes of this host through the data directory.
        component(
            "pubsub",
            "pubsub.sqlite",
            vec![item("connectionString", file("pubsub.db"))],
        ),
        // Shared by the runtimes of this host, as the broker is.
        component(
            "lockstore",
            "lock.sqlite",
            vec![item("connectionString", file("lock.db"))],
        ),
    ]
}
