//! Between HTTP statuses and gRPC codes, as daprd maps them.

use mecha_core::GrpcCode;

/// The gRPC code daprd gives a non-2xx answer of an HTTP app on
/// `InvokeService` (`CodeFromHTTPStatus`).
pub fn grpc_code_for_http(status: u16) -> GrpcCode {
    match status {
        200..=399 => GrpcCode::Ok,
        400 => GrpcCode::Internal,
        401 => GrpcCode::Unauthenticated,
        403 => GrpcCode::PermissionDenied,
        404 => GrpcCode::NotFound,
        408 => GrpcCode::Cancelled,
        409 => GrpcCode::AlreadyExists,
        429 => GrpcCode::ResourceExhausted,
        501 => GrpcCode::Unimplemented,
        503 => GrpcCode::Unavailable,
        504 => GrpcCode::DeadlineExceeded,
        _ => GrpcCode::Unknown,
    }
}

/// The HTTP status for a gRPC code (the grpc-gateway mapping daprd uses for
/// the answers of gRPC apps to HTTP callers).
pub fn http_status_for_grpc(code: i32) -> u16 {
    match code {
        0 => 200,
        1 => 408,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings() {
        assert_eq!(grpc_code_for_http(204), GrpcCode::Ok);
        assert_eq!(grpc_code_for_http(404), GrpcCode::NotFound);
        assert_eq!(grpc_code_for_http(500), GrpcCode::Unknown);
        assert_eq!(http_status_for_grpc(5), 404);
        assert_eq!(http_status_for_grpc(14), 503);
        assert_eq!(http_status_for_grpc(13), 500);
    }
}
