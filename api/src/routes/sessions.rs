//! Dashboard sign-in: `POST /api/v1/sessions` trades an API key for a session cookie (HttpOnly,
//! SameSite=Strict, Secure on https); `GET /api/v1/sessions/current` says who is signed in and
//! gives the CSRF token that actions must carry; `DELETE` signs out.

use axum::Extension;
use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::access::{CSRF_HEADER, SESSION_COOKIE, SignedIn};
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::state::AppState;
use crate::store::keys;
use crate::store::sessions::{self, SESSION_LENGTH};
use crate::tenant::Caller;

/// Body of `POST /api/v1/sessions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// An API key (`sbk_…`): an operator's, or a business'.
    pub key: String,
}

/// Who is signed in or calling.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Session {
    /// The key's id.
    pub key_id: String,
    /// The business the key is for; `null` for an operator's key.
    pub business: Option<String>,
    /// Whether the key is an operator's (every business).
    pub operator: bool,
    /// With a session: the token actions carry in `csrf_header`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// With a session (on `GET /api/v1/sessions/current`): the header name, `X-CSRF-Token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_header: Option<String>,
}

fn who(caller: &Caller) -> Session {
    Session {
        key_id: caller.key_id.clone(),
        business: caller.business.clone(),
        operator: caller.business.is_none(),
        csrf_token: None,
        csrf_header: None,
    }
}

fn cookie(state: &AppState, value: &str, max_age_secs: u64) -> String {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    )
}

/// Signs in with a key: sets the session cookie and returns the CSRF token.
#[utoipa::path(
    post, path = "/api/v1/sessions", tag = "access", operation_id = "sign_in", security(()),
    request_body = SignIn,
    responses(
        (status = 201, description = "Signed in: the session cookie is set", body = Session),
        (status = 401, description = "Unknown or revoked key", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address", body = ErrorBody),
    )
)]
pub async fn sign_in(
    State(state): State<AppState>,
    Json(body): Json<SignIn>,
) -> ApiResult<Response> {
    let key = keys::find_usable(state.engine.db(), body.key.trim())
        .await?
        .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API key".into()))?;
    let session = sessions::start(state.engine.db(), &key.id).await?;
    let mut body = who(&Caller::of(&key));
    body.csrf_token = Some(session.csrf_token);
    let set_cookie = cookie(&state, &session.token, SESSION_LENGTH.as_secs());
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, set_cookie)],
        JsonResponse(body),
    )
        .into_response())
}

/// Who is calling; with a session, also its CSRF token (for the `X-CSRF-Token` header).
#[utoipa::path(
    get, path = "/api/v1/sessions/current", tag = "access", operation_id = "current_session",
    responses(
        (status = 200, description = "Who is calling (`csrf_token` only with a session)", body = Session),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn current(
    caller: Caller,
    signed_in: Option<Extension<SignedIn>>,
) -> JsonResponse<Session> {
    let mut body = who(&caller);
    if let Some(Extension(session)) = signed_in {
        body.csrf_token = Some(session.csrf_token);
        body.csrf_header = Some(CSRF_HEADER.to_owned());
    }
    JsonResponse(body)
}

/// Signs out: ends the session and clears the cookie.
#[utoipa::path(
    delete, path = "/api/v1/sessions/current", tag = "access", operation_id = "sign_out",
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No CSRF token", body = ErrorBody),
    )
)]
pub async fn sign_out(
    State(state): State<AppState>,
    _caller: Caller,
    signed_in: Option<Extension<SignedIn>>,
) -> ApiResult<Response> {
    if let Some(Extension(session)) = signed_in {
        sessions::end(state.engine.db(), &session.token).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cookie(&state, "", 0))],
    )
        .into_response())
}
