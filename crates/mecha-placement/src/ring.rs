//! daprd's placement ring (`pkg/placement/hashing`), which every runtime
//! builds from the table placement sends:
//! - a key hashes to the first 8 bytes of its BLAKE2b-512 digest, read as
//!   a little-endian `u64`;
//! - each host has `replication_factor` virtual nodes, the hashes of its
//!   name followed by the node's index in decimal (`"10.0.0.1:50002"` +
//!   `"7"`), with no separator;
//! - an actor belongs to the host of the first virtual node at or after
//!   the hash of its id (the id only, not its type: each actor type has a
//!   ring of its own), wrapping to the first past the end.

use blake2::{Blake2b512, Digest};

/// Virtual nodes per host unless the table says otherwise (placement's
/// `--replicationFactor` default).
pub const DEFAULT_REPLICATION_FACTOR: usize = 100;

/// The ring's hash of `key`.
pub fn hash(key: &str) -> u64 {
    let digest = Blake2b512::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The ring of one actor type: virtual nodes sorted by hash, each naming
/// its host by index into `hosts`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ring<H> {
    nodes: Vec<(u64, usize)>,
    hosts: Vec<H>,
}

impl<H> Ring<H> {
    /// Builds the ring of `hosts`, each with `replication_factor` virtual
    /// nodes named after `name(host)`.
    pub fn new(hosts: Vec<H>, replication_factor: usize, name: impl Fn(&H) -> &str) -> Self {
        let mut nodes = Vec::with_capacity(hosts.len() * replication_factor);
        let mut key = String::new();
        for (index, host) in hosts.iter().enumerate() {
            for node in 0..replication_factor {
                key.clear();
                key.push_str(name(host));
                key.push_str(&node.to_string());
                nodes.push((hash(&key), index));
            }
        }
        // Equal hashes (never seen with 64 bits) go to the host whose
        // name sorts first, where daprd picks one at random.
        nodes.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| name(&hosts[a.1]).cmp(name(&hosts[b.1])))
        });
        Self { nodes, hosts }
    }

    /// The host that owns `actor_id`; `None` when the ring has no host.
    pub fn owner(&self, actor_id: &str) -> Option<&H> {
        let key = hash(actor_id);
        let at = self.nodes.partition_point(|(node, _)| *node < key);
        let (_, host) = self.nodes.get(at).or_else(|| self.nodes.first())?;
        self.hosts.get(*host)
    }

    pub fn hosts(&self) -> &[H] {
        &self.hosts
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(names: &[&str]) -> Ring<String> {
        let hosts = names.iter().map(|name| (*name).to_owned()).collect();
        Ring::new(hosts, DEFAULT_REPLICATION_FACTOR, String::as_str)
    }

    /// The virtual node hashes of daprd's own test
    /// (`TestGetAndSetVirtualNodeCacheHashes`, v1.14.0 to v1.18.3).
    #[test]
    fn hashes_are_daprds() {
        let first = [
            11414427053803968138u64,
            6110756290993384529,
            13876541546109691082,
            12165331075625862737,
            9528020266818944582,
        ];
        for (i, expected) in first.iter().enumerate() {
            assert_eq!(hash(&format!("192.168.1.83:60992{i}")), *expected);
        }
        let second = [
            13384490355354205375u64,
            11281728843146723001,
            694935339057032644,
        ];
        for (i, expected) in second.iter().enumerate() {
            assert_eq!(hash(&format!("192.168.1.89:62362{i}")), *expected);
        }
    }

    /// Owners computed apart from this code (a script over BLAKE2b-512 and
    /// the rule above), as daprd's lookup gives them.
    #[test]
    fn owners_are_daprds() {
        let five = ring(&["node1", "node2", "node3", "node4", "node5"]);
        let owners: Vec<&str> = (0..10)
            .map(|id| five.owner(&id.to_string()).unwrap().as_str())
            .collect();
        assert_eq!(
            owners,
            [
                "node2", "node1", "node1", "node5", "node2", "node5", "node5", "node1", "node4",
                "node5"
            ]
        );
        let two = ring(&["10.0.0.1:50002", "10.0.0.2:50002"]);
        for (id, owner) in [
            ("a", "10.0.0.2:50002"),
            ("b", "10.0.0.1:50002"),
            ("c", "10.0.0.1:50002"),
            ("actor-1", "10.0.0.1:50002"),
            ("actor-2", "10.0.0.1:50002"),
            ("actor-3", "10.0.0.2:50002"),
        ] {
            assert_eq!(two.owner(id).unwrap(), owner, "owner of {id}");
        }
    }

    #[test]
    fn an_empty_ring_has_no_owner() {
        assert!(ring(&[]).owner("x").is_none());
        assert!(
            Ring::new(vec!["a".to_owned()], 0, String::as_str)
                .owner("x")
                .is_none()
        );
    }

    /// The order hosts are given in changes nothing, and a host that
    /// leaves moves only its own actors.
    #[test]
    fn owners_depend_only_on_the_set_of_hosts() {
        let abc = ring(&["a:1", "b:1", "c:1"]);
        let cba = ring(&["c:1", "b:1", "a:1"]);
        let ab = ring(&["a:1", "b:1"]);
        let mut moved = 0;
        for id in 0..2000 {
            let id = format!("actor-{id}");
            let owner = abc.owner(&id).unwrap();
            assert_eq!(owner, cba.owner(&id).unwrap());
            if owner != "c:1" {
                assert_eq!(owner, ab.owner(&id).unwrap(), "{id} moved");
            } else {
                moved += 1;
            }
        }
        // About a third of the actors were on c.
        assert!((400..=950).contains(&moved), "{moved} on c");
    }
}
