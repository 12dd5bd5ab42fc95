//! The one place that knows every concrete component. Adding a component
//! crate is one line in [`components!`] below (its feature, its crate and
//! the types it registers) and one optional dependency of the same name in
//! this crate's `Cargo.toml`.

use mecha_core::Registry;

/// Every line: the cargo feature (the optional dependency's name, which is
/// also the crate's name here) `=>` the types its `register` adds. A type
/// whose feature is off is registered as a stub that names the feature.
macro_rules! components {
    ($($feature:literal, $krate:ident => [$($type_name:literal),* $(,)?];)*) => {
        /// Every component type compiled into this binary, and a stub for
        /// each one compiled out.
        pub fn registry() -> Registry {
            let mut registry = Registry::new();
            $(
                #[cfg(feature = $feature)]
                add(&mut registry, $feature, &[$($type_name),*], Some($krate::register));
                #[cfg(not(feature = $feature))]
                add(&mut registry, $feature, &[$($type_name),*], None);
            )*
            registry
        }
    };
}

components! {
    "memory", memory => ["state.in-memory", "pubsub.in-memory", "scheduler.in-memory"];
    "sqlite", sqlite => ["state.sqlite", "pubsub.sqlite", "lock.sqlite", "scheduler.sqlite", "nameresolution.sqlite"];
    "redis", redis => ["state.redis", "pubsub.redis", "lock.redis", "configuration.redis", "bindings.redis"];
    "postgres", postgres => ["state.postgresql", "configuration.postgresql", "bindings.postgresql", "bindings.postgres", "scheduler.postgresql"];
    "mysql", mysql => ["state.mysql", "bindings.mysql"];
    "nats", nats => ["pubsub.jetstream"];
    "rabbitmq", rabbitmq => ["pubsub.rabbitmq", "bindings.rabbitmq"];
    "mqtt", mqtt => ["pubsub.mqtt3", "bindings.mqtt3"];
    "local", local => ["secretstores.local.file", "secretstores.local.env", "bindings.cron", "bindings.localstorage"];
    "http", http => ["bindings.http"];
    "mdns", mdns => ["nameresolution.mdns"];
    "kubernetes", kubernetes => ["nameresolution.kubernetes"];
}

/// Adds one crate's types, or their stubs when it is compiled out.
///
/// # Panics
/// When the crate registers other types than its line lists: the line is
/// what names the stubs, so it must stay true.
fn add(
    registry: &mut Registry,
    feature: &'static str,
    types: &[&'static str],
    register: Option<fn(&mut Registry)>,
) {
    let Some(register) = register else {
        for type_name in types {
            registry.register_compiled_out(type_name, feature);
        }
        return;
    };
    let mut own = Registry::new();
    register(&mut own);
    let mut listed = types.to_vec();
    listed.sort_unstable();
    let registered: Vec<&str> = own.types().iter().map(|t| t.type_name).collect();
    assert_eq!(
        registered, listed,
        "the line of '{feature}' in components! must list exactly the types its crate registers"
    );
    registry.merge(own);
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_line_lists_its_crates_types() {
        // `add` checks each line; the default features compile every crate.
        let registry = super::registry();
        assert!(registry.types().iter().all(|t| t.compiled_out.is_none()));
        assert!(registry.get("state.in-memory").is_some());
    }
}
