//! The output bindings API: one operation on a binding component, with
//! daprd's error code. Input bindings are driven by the runtime
//! (`mecha_bindings::InputBindings`, a service of the runtime), not by an
//! API call.

use http::HeaderMap;
use mecha_bindings::{BindingError, BindingsBlock, InvokeResponse};
pub use mecha_bindings::{InvokeRequest, Metadata};
use mecha_core::{ApiError, GrpcCode};

use crate::Api;

const CODE: &str = "ERR_INVOKE_OUTPUT_BINDING";

/// A failed operation: the error, and what metadata the binding answered
/// with anyway (the HTTP binding's status, for one), which daprd still
/// returns as headers.
#[derive(Debug)]
pub struct BindingFailure {
    pub error: ApiError,
    pub metadata: Metadata,
}

impl From<ApiError> for BindingFailure {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            metadata: Metadata::new(),
        }
    }
}

impl Api {
    /// Runs `request` on output binding `name`; `None` when the binding
    /// answered nothing. As daprd, the caller's trace context (the next
    /// hop's `traceparent`, `tracestate`, `baggage`) goes to the binding in
    /// the request's metadata, unless the request sets them.
    pub async fn invoke_binding(
        &self,
        name: &str,
        mut request: InvokeRequest,
        caller: &HeaderMap,
    ) -> Result<Option<InvokeResponse>, BindingFailure> {
        let (traceparent, tracestate) = crate::pubsub::trace_context(caller);
        // Every `baggage` header, joined, must be valid W3C baggage: daprd
        // refuses the call otherwise (HTTP 400; over gRPC its plain error,
        // UNKNOWN).
        let baggage = caller
            .get_all(mecha_invoke::trace::BAGGAGE)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        if let Err(problem) = mecha_invoke::trace::check_baggage(&baggage) {
            return Err(ApiError::new(
                "ERR_MALFORMED_REQUEST",
                400,
                GrpcCode::Unknown,
                format!("invalid baggage header: {problem}"),
            )
            .into());
        }
        for (key, value) in [
            ("traceparent", traceparent),
            ("tracestate", tracestate),
            ("baggage", baggage),
        ] {
            if !value.is_empty() && request.meta(key).is_none() {
                request.metadata.insert(key.to_owned(), value);
            }
        }
        // daprd checks the operation first, and answers every failure of an
        // output binding with 500 (`INTERNAL`), whoever is to blame.
        if request.operation.is_empty() {
            return Err(
                invoke_error(name, "operation field is missing from request".to_owned()).into(),
            );
        }
        let binding = self
            .runtime()
            .components()
            .get::<BindingsBlock>(name)
            .and_then(|b| b.output.clone())
            .ok_or_else(|| invoke_error(name, format!("couldn't find output binding {name}")))?;
        // The binding refuses an operation it does not take
        // (`OutputBinding::check_operation`, first thing in each one).
        binding
            .invoke(&request)
            .await
            .map_err(|err| binding_error(name, err))
    }
}

fn invoke_error(name: &str, detail: String) -> ApiError {
    ApiError::new(
        CODE,
        500,
        GrpcCode::Internal,
        format!("error invoking output binding {name}: {detail}"),
    )
}

fn binding_error(name: &str, err: BindingError) -> BindingFailure {
    if matches!(
        err,
        BindingError::Backend(_) | BindingError::Answered { .. }
    ) {
        tracing::warn!(binding = %name, error = %format!("{err:#}"), "output binding failed");
    }
    let metadata = match &err {
        BindingError::Answered { metadata, .. } => metadata.clone(),
        _ => Metadata::new(),
    };
    let detail = match &err {
        // daprd's words, which name the binding.
        BindingError::UnsupportedOperation {
            operation,
            supported,
        } => format!(
            "binding {name} does not support operation {operation}. supported operations:{}",
            supported.join(" ")
        ),
        _ => format!("{err:#}"),
    };
    BindingFailure {
        error: invoke_error(name, detail),
        metadata,
    }
}
