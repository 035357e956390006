//! Who may call the API: API keys (`Authorization: Bearer sbk_…`), dashboard sessions (an
//! HttpOnly cookie plus a CSRF token on actions), the first operator key, and the audit log.
//!
//! Every route behind [`authenticate`] gets a resolved [`Caller`] (see `tenant`); the few
//! public ones (health, the OpenAPI document, signed webhooks, sign-in) are listed in
//! `router::app`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use switchboard_engine::{Db, EngineError};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{audit, keys, sessions};
use crate::tenant::Caller;

/// The dashboard session cookie.
pub const SESSION_COOKIE: &str = "switchboard_session";

/// The header that carries a session's CSRF token on actions.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Resolves the caller from an API key or a dashboard session, applies its rate limit (a
/// business' keys share one bucket; each operator key has its own) and hands it to the handler;
/// `401` without valid credentials (`429` once an address keeps failing), `403 csrf_failed` for a
/// session's action without its CSRF token, `429` over the limit.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let (caller, signed_in) = match resolve(&state, request.method(), request.headers()).await {
        Ok(resolved) => resolved,
        Err(e) => {
            // Requests with bad credentials draw on their address' bucket: guessing is throttled.
            let peer = request
                .extensions()
                .get::<axum::extract::ConnectInfo<crate::listener::Peer>>()
                .map(|c| c.0.0.ip());
            if let Some(ip) = peer
                && let Err(limited) = state.limits.check_address(ip)
            {
                return limited.into_response();
            }
            return e.into_response();
        }
    };
    if let Err(e) = state.limits.check_bucket(&caller.rate_bucket()) {
        return e.into_response();
    }
    request.extensions_mut().insert(caller);
    if let Some(session) = signed_in {
        request.extensions_mut().insert(session);
    }
    next.run(request).await
}

/// The dashboard session a request came with (in its extensions when it did), for the handlers
/// that need more than the caller: who is signed in, sign-out, the event stream's recheck.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// The cookie's token.
    pub token: String,
    /// The token actions must carry in [`CSRF_HEADER`].
    pub csrf_token: String,
}

/// The caller, and its session when it came with one (a key in `Authorization` wins).
async fn resolve(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(Caller, Option<SignedIn>), ApiError> {
    let db = state.engine.db();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let key = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization must be `Bearer <API key>`".into())
            })?;
        let found = keys::find_usable(db, key).await?;
        return found
            .map(|k| (Caller::of(&k), None))
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API key".into()));
    }
    if let Some(token) = session_token(headers) {
        let session = sessions::find_live(db, &token)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the session has ended: sign in again".into()))?;
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !safe && !presented.is_some_and(|t| constant_time_eq(t, &session.csrf_token)) {
            return Err(ApiError::Forbidden {
                code: "csrf_failed",
                message: format!("a signed-in action needs the session's {CSRF_HEADER} header"),
            });
        }
        let signed_in = SignedIn {
            token,
            csrf_token: session.csrf_token,
        };
        return Ok((Caller::of(&session.key), Some(signed_in)));
    }
    Err(ApiError::Unauthorized(
        "an API key is required: `Authorization: Bearer <key>` (or sign in to the dashboard)"
            .into(),
    ))
}

/// The session token of the request's cookie, if any.
fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

/// How often a long-lived request (the event stream) checks that its key or session still holds.
pub const CREDENTIALS_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Resolves once `caller`'s key is revoked or, for a dashboard session, the session `token`
/// ends (sign-out, expiry, revocation); checked every [`CREDENTIALS_RECHECK`].
pub async fn until_credentials_end(db: Db, caller: Caller, session: Option<String>) {
    let mut every = tokio::time::interval(CREDENTIALS_RECHECK);
    every.tick().await;
    loop {
        every.tick().await;
        let holds = match &session {
            Some(token) => sessions::find_live(&db, token).await.map(|s| s.is_some()),
            None => keys::find(&db, &caller.key_id)
                .await
                .map(|k| k.is_some_and(|k| k.revoked_at.is_none())),
        };
        // A database hiccup is not a revocation: check again next time.
        if let Ok(false) = holds {
            return;
        }
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Records that `caller` did `action` to `target` (of `business`) in the audit log.
pub async fn audit(
    state: &AppState,
    caller: &Caller,
    business: Option<&str>,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    audit::record(
        state.engine.db(),
        audit::Entry {
            actor: &caller.key_id,
            business_id: business,
            action,
            target,
            detail,
        },
    )
    .await?;
    Ok(())
}

/// What start-up did about operator keys.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// `SWITCHBOARD_OPERATOR_KEY` is a usable operator key.
    FromSetting,
    /// `SWITCHBOARD_OPERATOR_KEY` was revoked (or is a business' key): it does not work.
    SettingRevoked,
    /// The database had no operator key: this fresh one was stored, to be shown once.
    Created(String),
    /// Operator keys exist already; nothing to do.
    Existing,
}

/// The id of the operator key the first start creates: with several processes starting at once
/// on an empty database, the one whose insert lands creates it.
const FIRST_OPERATOR_KEY_ID: &str = "key_first_operator";

/// Makes sure an operator can get in: stores `configured` (`SWITCHBOARD_OPERATOR_KEY`, trimmed)
/// as an operator key, or on a database with no operator key creates one for the caller to print.
pub async fn bootstrap(db: &Db, configured: Option<&str>) -> Result<Bootstrap, EngineError> {
    if let Some(secret) = configured.map(str::trim) {
        let mut tx = db.begin().await?;
        keys::insert(
            &mut tx,
            &keys::new_id(),
            None,
            "SWITCHBOARD_OPERATOR_KEY",
            secret,
        )
        .await?;
        tx.commit().await?;
        return Ok(match keys::find_by_secret(db, secret).await? {
            Some(k) if k.business_id.is_none() && k.revoked_at.is_none() => Bootstrap::FromSetting,
            _ => Bootstrap::SettingRevoked,
        });
    }
    // A deployment that ever had an operator key (revoked ones count) is set up.
    if keys::operator_keys(db, false).await? > 0 {
        return Ok(Bootstrap::Existing);
    }
    let secret = keys::generate();
    let mut tx = db.begin().await?;
    let created = keys::insert(
        &mut tx,
        FIRST_OPERATOR_KEY_ID,
        None,
        "first operator key",
        &secret,
    )
    .await?;
    tx.commit().await?;
    Ok(match created {
        true => Bootstrap::Created(secret),
        false => Bootstrap::Existing, // another process created it
    })
}
