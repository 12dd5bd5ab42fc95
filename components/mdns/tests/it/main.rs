//! `nameresolution.mdns` against the name resolution conformance suite, with
//! real multicast DNS on this host's interfaces (each resolver runs its own
//! mDNS daemon, as separate runtimes do).

use std::sync::Arc;

use async_trait::async_trait;
use mecha_component_mdns::MdnsResolver;
use mecha_nameresolution::NameResolver;
use mecha_nameresolution::conformance::Harness;

#[derive(Default)]
struct Mdns;

#[async_trait]
impl Harness for Mdns {
    async fn resolver(&self) -> Option<Arc<dyn NameResolver>> {
        Some(MdnsResolver::start().expect("start mDNS"))
    }

    fn unique(&self, name: &str) -> String {
        format!(
            "{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        )
    }
}

mecha_nameresolution::nameresolution_conformance!(Mdns);
