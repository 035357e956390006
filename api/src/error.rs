//! The API's one error type and its JSON shape: `{"error":{"code","message","details"}}`.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use switchboard_engine::EngineError;
use utoipa::ToSchema;

/// Everything a request can fail with; each variant has one status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, or a parameter is malformed.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no valid API key or session; a webhook signature missing, wrong or stale.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but not allowed (an operator-only route, a missing CSRF token).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 429: over the caller's rate limit; retry after the given time (`Retry-After`).
    #[error("too many requests: retry in {} s", .0.as_secs().max(1))]
    RateLimited(std::time::Duration),
    /// 404: no such thing (or not this caller's).
    #[error("{0}")]
    NotFound(String),
    /// 409: the resource is in a state that does not allow this.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than allowed.
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// 415: the body is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed but invalid input; `details` names the field.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// 503: the request took longer than allowed; it may have taken effect in part.
    #[error("the request took longer than {0:?}; retry (with the same Idempotency-Key for a lead)")]
    Timeout(std::time::Duration),
    /// 503: not ready to serve (`/readyz`); `details` says which check failed.
    #[error("{message}")]
    Unavailable { message: String, details: Value },
    /// 500: our fault; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<switchboard_workflows::intake::IntakeError> for ApiError {
    fn from(e: switchboard_workflows::intake::IntakeError) -> Self {
        use switchboard_workflows::intake::IntakeError as E;
        let message = e.to_string();
        match e {
            E::Invalid { code, field, .. } => ApiError::invalid(code, field, message),
            E::UnknownBusiness(_) => ApiError::invalid("unknown_business", "business", message),
            E::DoNotCall(_) => ApiError::invalid("do_not_call", "phone", message),
            E::KeyReused => ApiError::invalid("idempotency_key_reused", "Idempotency-Key", message),
            E::Store(e) => e.into(),
        }
    }
}

/// `Result` with [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A 422 naming the field at fault.
    pub fn invalid(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
            details: json!({ "field": field }),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, Value) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code, Value::Null),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", Value::Null),
            ApiError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code, Value::Null),
            ApiError::RateLimited(after) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                json!({ "retry_after_secs": after.as_secs().max(1) }),
            ),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", Value::Null),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", Value::Null),
            ApiError::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout", Value::Null),
            ApiError::Unavailable { details, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                details.clone(),
            ),
            ApiError::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                json!({ "limit_bytes": limit }),
            ),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                Value::Null,
            ),
            ApiError::Invalid { code, details, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, details.clone())
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", Value::Null),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, details) = self.parts();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = ?cause, "request failed");
        }
        let body = error_body(code, &self.to_string(), details);
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited(after) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, after.as_secs().max(1).into());
        }
        response
    }
}

/// The error shape: `{"error": {"code", "message", "details"}}`.
pub fn error_body(code: &str, message: &str, details: Value) -> Value {
    json!({ "error": { "code": code, "message": message, "details": details } })
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::RunNotFound(id) => ApiError::NotFound(format!("run {id} not found")),
            EngineError::InvalidState { .. } => ApiError::Conflict(e.to_string()),
            other => ApiError::Internal(other.into()),
        }
    }
}

/// The body limit of JSON routes.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// The body limit of the routes that take a script: a script may be 64 KiB, escaped in JSON.
pub const SCRIPT_BODY_LIMIT: usize = 256 * 1024;

/// The 422 for a script that is not valid: its errors and failed tests (from `report`).
pub(crate) fn invalid_script(
    errors: Vec<switchboard_workflows::scripting::sandbox::ScriptError>,
    report: Option<&switchboard_workflows::scripting::validate::Report>,
) -> ApiError {
    let message = errors
        .first()
        .map(|e| format!("the script is not valid: {e}"))
        .unwrap_or_else(|| "the script is not valid".into());
    ApiError::Invalid {
        code: "invalid_script",
        message,
        details: json!({ "errors": errors, "tests": report.map(|r| &r.tests) }),
    }
}

impl ApiError {
    /// A JSON body's rejection, for a route whose body limit is `limit`.
    pub fn from_json_rejection(r: JsonRejection, limit: usize) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => ApiError::Invalid {
                code: "invalid_body",
                message: e.body_text(),
                details: Value::Null,
            },
            JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest {
                code: "malformed_json",
                message: e.body_text(),
            },
            JsonRejection::MissingJsonContentType(e) => {
                ApiError::UnsupportedMediaType(e.body_text())
            }
            JsonRejection::BytesRejection(e) => ApiError::from_bytes_rejection(e, limit),
            other => ApiError::BadRequest {
                code: "bad_request",
                message: other.body_text(),
            },
        }
    }

    /// A body's rejection, for a route whose body limit is `limit`.
    pub fn from_bytes_rejection(r: BytesRejection, limit: usize) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge { limit }
        } else {
            ApiError::BadRequest {
                code: "bad_request",
                message: r.body_text(),
            }
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::Invalid {
            code: "invalid_query",
            message: r.body_text(),
            details: Value::Null,
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadRequest {
            code: "invalid_path",
            message: r.body_text(),
        }
    }
}

/// The one error shape of every 4xx and 5xx answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// See [`ErrorBody`].
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, e.g. `invalid_phone`, `not_found`, `conflict`.
    pub code: String,
    /// For people.
    pub message: String,
    /// More, e.g. `{"field": "phone"}`; `null` when there is nothing more.
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    pub details: serde_json::Value,
}
