//! The one error type the API layer returns. Each transport adapter renders
//! it (HTTP status + JSON body, gRPC status + details); none invents codes.

use std::collections::BTreeMap;
use std::fmt;

/// gRPC status codes, numbered as in `google.rpc.Code`, so that this crate
/// does not depend on a gRPC stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

/// Names a resource an error is about (`google.rpc.ResourceInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    pub resource_type: &'static str,
    pub resource_name: String,
}

/// A field that failed validation (`google.rpc.BadRequest.FieldViolation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// An error as Dapr reports it: a stable `ERR_*` code, an HTTP status, a
/// gRPC code, a message and, for Dapr's "rich" errors, an `ErrorInfo`
/// reason (`DAPR_*`) with optional resource and field details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The `errorCode` of the HTTP body, such as `ERR_STATE_STORE_NOT_FOUND`.
    pub code: &'static str,
    pub http_status: u16,
    pub grpc_code: GrpcCode,
    pub message: String,
    /// The `ErrorInfo` reason of a rich error, such as `DAPR_STATE_NOT_FOUND`.
    pub reason: Option<&'static str>,
    /// The other details of a rich error, boxed: most errors have none.
    pub details: Option<Box<Details>>,
}

/// The details of a rich error beside its reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    pub resource: Option<ResourceInfo>,
    pub field_violation: Option<FieldViolation>,
    /// The `ErrorInfo` metadata.
    pub info_metadata: BTreeMap<&'static str, String>,
}

/// The domain of every `ErrorInfo` Dapr emits.
pub const ERROR_DOMAIN: &str = "dapr.io";

impl ApiError {
    /// A legacy error: code, HTTP status, gRPC code and message only.
    pub fn new(
        code: &'static str,
        http_status: u16,
        grpc_code: GrpcCode,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            http_status,
            grpc_code,
            message: message.into(),
            reason: None,
            details: None,
        }
    }

    fn details_mut(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Box::default)
    }

    pub fn resource(&self) -> Option<&ResourceInfo> {
        self.details.as_ref()?.resource.as_ref()
    }

    pub fn field_violation(&self) -> Option<&FieldViolation> {
        self.details.as_ref()?.field_violation.as_ref()
    }

    /// The `ErrorInfo` metadata (empty for most errors).
    pub fn info_metadata(&self) -> Option<&BTreeMap<&'static str, String>> {
        self.details
            .as_ref()
            .map(|d| &d.info_metadata)
            .filter(|m| !m.is_empty())
    }

    /// Makes this a rich error with the given `ErrorInfo` reason.
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn with_resource(mut self, resource_type: &'static str, name: impl Into<String>) -> Self {
        self.details_mut().resource = Some(ResourceInfo {
            resource_type,
            resource_name: name.into(),
        });
        self
    }

    pub fn with_info_metadata(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.details_mut().info_metadata.insert(key, value.into());
        self
    }

    pub fn with_field_violation(
        mut self,
        field: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.details_mut().field_violation = Some(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
        self
    }

    /// The reason reported in gRPC `ErrorInfo`: the rich reason when there is
    /// one, else the legacy code, so SDKs always get a stable code to read.
    pub fn info_reason(&self) -> &'static str {
        self.reason.unwrap_or(self.code)
    }

    // Common errors shared by every block.

    pub fn malformed_request(message: impl Into<String>) -> Self {
        Self::new(
            "ERR_MALFORMED_REQUEST",
            400,
            GrpcCode::InvalidArgument,
            message,
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new("ERR_BAD_REQUEST", 400, GrpcCode::InvalidArgument, message)
    }

    pub fn body_read(message: impl Into<String>) -> Self {
        Self::new("ERR_BODY_READ", 400, GrpcCode::InvalidArgument, message)
    }

    pub fn unimplemented(what: &str) -> Self {
        Self::new(
            "ERR_API_UNIMPLEMENTED",
            501,
            GrpcCode::Unimplemented,
            format!("{what} is not implemented by this runtime yet"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("ERR_INTERNAL", 500, GrpcCode::Internal, message)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}
