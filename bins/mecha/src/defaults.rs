//! The embedded defaults (DESIGN.md §3): with no `--resources-path`, the
//! runtime loads built-in components kept in the data directory. This is a
//! deliberate difference from daprd, which reads `~/.dapr/components`.

use std::path::Path;
use std::time::Duration;

use mecha_config::{Component, MetadataItem, MetadataSource};

/// Where the embedded components come from, in messages.
pub const EMBEDDED: &str = "<embedded defaults>";

/// The built-in components for `data_dir`.
pub fn components(data_dir: &Path) -> Vec<Component> {
    let item = |name: &str, value: String| MetadataItem {
        name: name.into(),
        source: MetadataSource::Value(value),
    };
    vec![Component {
        // The name `dapr init` gives its state store.
        name: "statestore".into(),
        namespace: None,
        type_name: "state.sqlite".into(),
        version: "v1".into(),
        init_timeout: Duration::from_secs(5),
        ignore_errors: false,
        metadata: vec![
            item(
                "connectionString",
                data_dir.join("state.db").to_string_lossy().into_owned(),
            ),
            item("actorStateStore", "true".into()),
        ],
        secret_store: None,
        scopes: vec![],
        file: EMBEDDED.into(),
    }]
}
