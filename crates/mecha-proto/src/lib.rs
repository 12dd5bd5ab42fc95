//! Dapr's gRPC wire types and services, generated from the descriptors of the
//! official `dapr` Python SDK wheel (see `scripts/extract-dapr-protos.py`),
//! and JSON as protobuf's well-known types ([`wkt`]). It depends on no
//! workspace crate, so a change elsewhere never reruns code generation.
#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod wkt;

/// The encoded `FileDescriptorSet`, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("../proto/dapr.fds.bin");

pub mod dapr {
    pub mod proto {
        pub mod common {
            pub mod v1 {
                tonic::include_proto!("dapr.proto.common.v1");
            }
        }
        pub mod runtime {
            pub mod v1 {
                tonic::include_proto!("dapr.proto.runtime.v1");
            }
        }
        /// daprd's placement protocol (`proto/dapr/proto/placement`).
        pub mod placement {
            pub mod v1 {
                tonic::include_proto!("dapr.proto.placement.v1");
            }
        }
    }
}

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// Mecha's own runtime-to-runtime protocol.
pub mod internal {
    pub mod v1 {
        tonic::include_proto!("mecha.internal.v1");
    }
}

/// A gRPC service for tests and benchmarks (an app's own API).
pub mod testing {
    pub mod v1 {
        tonic::include_proto!("mecha.testing.v1");
    }
}

/// The durable-task protocol (`TaskHubSidecarService`), which has no package.
pub mod durabletask {
    tonic::include_proto!("_");
}

pub use dapr::proto::common::v1 as common;
pub use dapr::proto::placement::v1 as placement;
pub use dapr::proto::runtime::v1 as runtime;

#[cfg(test)]
mod tests {
    use prost::Message;

    use crate::placement::{Host, HostOperation, PlacementOrder};

    /// daprd's field numbers, and `Host.version`'s presence: a version of 0
    /// is sent (an acknowledgement of version 0), none is not.
    #[test]
    fn placement_messages_use_daprds_fields() {
        let host = Host {
            name: "a".into(),
            operation: HostOperation::Lock as i32,
            version: Some(0),
            ..Host::default()
        };
        assert_eq!(host.encode_to_vec(), [0x0a, 1, b'a', 9 << 3, 2, 10 << 3, 0]);
        let report = Host {
            version: None,
            ..host
        };
        assert_eq!(report.encode_to_vec(), [0x0a, 1, b'a', 9 << 3, 2]);
        let order = PlacementOrder {
            operation: "lock".into(),
            version: 3,
            tables: None,
        };
        assert_eq!(
            order.encode_to_vec(),
            [2 << 3 | 2, 4, b'l', b'o', b'c', b'k', 3 << 3, 3]
        );
    }
}
