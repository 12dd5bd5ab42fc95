//! The actor runtime's errors, with daprd's codes.

use mecha_core::{ApiError, GrpcCode};

use crate::ActorRef;

/// A failure calling the actor (daprd's `ERR_ACTOR_INVOKE_METHOD`).
pub fn invoke_method(message: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_ACTOR_INVOKE_METHOD",
        500,
        GrpcCode::Internal,
        format!("error invoke actor method: {message}"),
    )
}

/// No runtime hosts the actor's type (daprd: 500 over HTTP,
/// `FAILED_PRECONDITION` over gRPC).
pub fn no_address(actor: &ActorRef) -> ApiError {
    ApiError {
        grpc_code: GrpcCode::FailedPrecondition,
        ..invoke_method(format!(
            "failed to lookup actor: did not find address for actor '{}||{}'",
            actor.actor_type, actor.actor_id
        ))
    }
}

/// Placement has given no tables within [`crate::PLACEMENT_WAIT`] (daprd
/// waits for as long as the caller does).
pub fn no_placement() -> ApiError {
    ApiError {
        grpc_code: GrpcCode::FailedPrecondition,
        ..invoke_method(format!(
            "failed to lookup actor: no placement tables within {}s: placement is unreachable",
            crate::PLACEMENT_WAIT.as_secs()
        ))
    }
}

/// The actor is already [`crate::MAX_WAITING`] calls behind.
pub fn too_many_waiting(actor: &ActorRef) -> ApiError {
    invoke_method(format!(
        "actor {actor} already has {} calls waiting for their turn",
        crate::MAX_WAITING
    ))
}

/// A reentrant chain went deeper than the type allows.
pub fn stack_depth() -> ApiError {
    ApiError::new(
        "ERR_ACTOR_STACK_DEPTH",
        500,
        GrpcCode::ResourceExhausted,
        "maximum stack depth exceeded",
    )
}
