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
            ServiceError::EnrolmentRejected(m) => {
                Self::new(StatusCode::FORBIDDEN, "enrolment_rejected", m)
            }
            ServiceError::Transport(m) => Self::new(StatusCode::BAD_REQUEST, TRANSPORT_ERROR, m),
            ServiceError::Domain(e) => e.into(),
        }
    }
}

/// Rust type names in serde's messages and the words a client understands instead.
fn type_words(name: &str) -> Option<&'static str> {
    Some(match name {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" | "u128" => "a whole number from 0 to 18446744073709551615",
        "i8" | "i16" | "i32" => "a whole number",
        "i64" | "isize" | "i128" => "a whole number",
        "f32" | "f64" => "a number",
        _ => return None,
    })
}

/// Rewrites a deserializer's message in words: no Rust type names (`expected struct Foo` →
/// `expected an object`, `u64` → `a whole number from 0 to …`), no crate phrasing. The
/// field path serde reports (`hardware.gpus[0].index: …`) is kept: it names the field.
pub fn humanize(text: &str) -> String {
    let text = text
        .replace(
            "Failed to deserialize the JSON body into the target type: ",
            "",
        )
        .replace(
            "Failed to parse the request body as JSON: ",
            "the body is not valid JSON: ",
        )
        .replace("Failed to deserialize query string: ", "query string: ")
        .replace("Failed to deserialize form: ", "")
        .replace("Invalid URL: ", "path: ");
    let mut out = String::with_capacity(text.len());
    let mut words = text.split(' ').peekable();
    let mut first = true;
    while let Some(w) = words.next() {
        if !first {
            out.push(' ');
        }
        first = false;
        // `struct Foo` / `tuple struct Foo` / `enum Foo` / `unit struct Foo`: drop the name.
        if matches!(w, "struct" | "enum") {
            let name = words.next().unwrap_or_default();
            let trail: String = name
                .chars()
                .skip_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if out.ends_with("tuple ") || out.ends_with("unit ") {
                let cut = out.trim_end().rfind(' ').map_or(0, |i| i + 1);
                out.truncate(cut);
            }
            if out.ends_with("a ") {
                out.truncate(out.len() - 2);
            }
            out.push_str(if w == "struct" {
                "an object"
            } else {
                "one of the allowed values"
            });
            out.push_str(&trail);
            continue;
        }
        // A type name, possibly quoted (`` `u64` ``) or followed by punctuation.
        let core = w.trim_matches(|c: char| !c.is_alphanumeric());
        if let Some(words) = type_words(core) {
            let start = w.find(core).unwrap_or(0);
            let (head, tail) = (&w[..start], &w[start + core.len()..]);
            if out.ends_with("a ") {
                out.truncate(out.len() - 2);
            }
            out.push_str(head.trim_matches('`'));
            out.push_str(words);
            out.push_str(tail.trim_start_matches('`'));
            continue;
        }
        out.push_str(match w {
            "map," => "object,",
            "map" => "object",
            "sequence," => "list,",
            "sequence" => "list",
            _ => w,
        });
    }
    out
}

/// Maps an axum rejection (status + text) to the API shape: 413 and 415 keep their status,
/// other client errors become 400 `invalid_request` with [`humanize`]d text, server-side ones
/// a generic 500.
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
        _ => ApiError::invalid(humanize(&text)),
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

#[cfg(test)]
mod tests {
    use super::humanize;

    #[test]
    fn serde_messages_lose_rust_type_names() {
        let cases = [
            (
                "Failed to deserialize the JSON body into the target type: invalid type: string \"x\", expected struct SubmitJobRequest at line 1 column 3",
                "invalid type: string \"x\", expected an object at line 1 column 3",
            ),
            (
                "Failed to deserialize the JSON body into the target type: sequence: invalid type: floating point `1.5`, expected u64 at line 1 column 15",
                "sequence: invalid type: floating point `1.5`, expected a whole number from 0 to 18446744073709551615 at line 1 column 15",
            ),
            (
                "Failed to deserialize the JSON body into the target type: kind: invalid type: map, expected enum JobKind",
                "kind: invalid type: object, expected one of the allowed values",
            ),
            (
                "Invalid URL: Cannot parse `abc` to a `u64`",
                "path: Cannot parse `abc` to a whole number from 0 to 18446744073709551615",
            ),
            (
                "x: invalid value: integer `-1`, expected u32",
                "x: invalid value: integer `-1`, expected a whole number from 0 to 4294967295",
            ),
            (
                "invalid type: sequence, expected tuple struct Hash32",
                "invalid type: list, expected an object",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(humanize(input), want, "{input}");
        }
    }
}
