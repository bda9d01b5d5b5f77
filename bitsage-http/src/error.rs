//! The one error shape of the API: `{"error":{"type":"…","message":"…"}}` with the matching
//! status code. Internal details (backend errors, panics) are logged, never sent.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bitsage_core::service::ServiceError;
use bitsage_core::Error;

use crate::api::{ErrorBody, ErrorDetail};

/// The message every 5xx caused by an internal failure carries.
pub const INTERNAL_MESSAGE: &str = "internal error";

/// An error answer: status, a stable `type` and a message safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `type` field (`invalid_request`, `not_found`, ...).
    pub kind: &'static str,
    /// The `message` field.
    pub message: String,
}

impl ApiError {
    /// An error with this status, type and message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 500 `internal` with the generic message; `detail` goes to the log only.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error while handling a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            INTERNAL_MESSAGE,
        )
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                kind: self.kind.to_string(),
                message: self.message.clone(),
            },
        }
    }
}

/// Renders an error with its whole `source()` chain, for logs.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match &err {
            Error::Invalid { .. } => Self::invalid(err.to_string()),
            Error::NotFound { .. } => Self::not_found(err.to_string()),
            Error::AlreadyExists { .. } | Error::Conflict(_) | Error::IllegalTransition { .. } => {
                Self::conflict(err.to_string())
            }
            Error::Signature(_) => Self::unauthorized(err.to_string()),
            Error::Unavailable { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                err.to_string(),
            ),
            Error::InsufficientFunds(_) => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_funds",
                err.to_string(),
            ),
            Error::Overflow(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "overflow",
                err.to_string(),
            ),
            Error::ProofRejected(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "proof_rejected",
                err.to_string(),
            ),
            _ => Self::internal(&chain(&err)),
        }
    }
}

/// The error `type` of a completion whose envelope was altered in transit (400; the agent
/// sends it again, the node is not blamed).
pub const TRANSPORT_ERROR: &str = "transport_error";

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Unauthenticated(m) => Self::unauthorized(m),
            ServiceError::Unauthorized(m) => Self::unauthorized(m),
            ServiceError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            ServiceError::AttestationRejected(m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "attestation_rejected", m)
            }
            ServiceError::WalletRejected(m) => {
                Self::new(StatusCode::FORBIDDEN, "wallet_rejected", m)
            }
            ServiceError::Transport(m) => Self::new(StatusCode::BAD_REQUEST, TRANSPORT_ERROR, m),
            ServiceError::Domain(e) => e.into(),
        }
    }
}

/// Maps an axum rejection (status + text) to the API shape: 413 and 415 keep their status,
/// other client errors become 400 `invalid_request`, server-side ones a generic 500.
fn from_rejection(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "payload_too_large",
            "the request body is larger than the server accepts",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "unsupported_media_type",
            "expected a body with `Content-Type: application/json`",
        ),
        s if s.is_server_error() => ApiError::internal(&text),
        _ => ApiError::invalid(text),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        from_rejection(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        from_rejection(r.status(), r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        from_rejection(r.status(), r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
