//! API keys: `POST /api/v1/keys` creates one (its secret is in this answer only),
//! `GET /api/v1/keys` lists them (never their secrets), `DELETE /api/v1/keys/{id}` revokes one.
//! A business' key manages its own business' keys; operator keys need an operator.

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use crate::store::keys;
use crate::tenant::Caller;

/// Body of `POST /api/v1/keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// What the key is for (1–100 characters), e.g. `CRM sync`.
    #[schema(example = "CRM sync", min_length = 1, max_length = 100)]
    pub name: String,
    /// The business the key may reach. Omitted: the caller's own business, or for an operator
    /// a new operator key.
    pub business: Option<String>,
}

/// Answer of `POST /api/v1/keys`: the key with its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    /// The secret, `sbk_…`: shown in this answer only.
    pub key: String,
    #[serde(flatten)]
    pub stored: keys::ApiKey,
}

/// Answer of `GET /api/v1/keys`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    /// Newest first, revoked ones too.
    pub keys: Vec<keys::ApiKey>,
}

/// Query of `GET /api/v1/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    business: Option<String>,
}

/// Records `action` on key `key` by `caller` (its name and prefix, never its secret).
async fn record(
    state: &AppState,
    caller: &Caller,
    action: &str,
    key: &keys::ApiKey,
) -> ApiResult<()> {
    let detail = json!({ "name": key.name, "prefix": key.prefix });
    crate::access::audit(
        state,
        caller,
        key.business_id.as_deref(),
        action,
        &key.id,
        detail,
    )
    .await
}

/// Creates a key; the answer is the only time its secret is shown.
#[utoipa::path(
    post, path = "/api/v1/keys", tag = "access", operation_id = "create_key",
    request_body = NewKey,
    responses(
        (status = 201, description = "The key, with its secret (shown once)", body = CreatedKey),
        (status = 404, description = "No such business (or not the caller's)", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewKey>,
) -> ApiResult<(StatusCode, JsonResponse<CreatedKey>)> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid(
            "invalid_name",
            "name",
            "name must be 1 to 100 characters",
        ));
    }
    let business = caller.scope(new.business)?;
    if let Some(b) = &business {
        crate::tenant::business(&state, &caller, b).await?;
    }
    let secret = keys::generate();
    let id = keys::new_id();
    let mut tx = state.engine.db().begin().await?;
    keys::insert(&mut tx, &id, business.as_deref(), name, &secret).await?;
    tx.commit().await?;
    let key = keys::find(state.engine.db(), &id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("key {id} vanished")))?;
    record(&state, &caller, "key.created", &key).await?;
    Ok((
        StatusCode::CREATED,
        JsonResponse(CreatedKey {
            key: secret,
            stored: key,
        }),
    ))
}

/// Lists keys (revoked ones too), newest first.
#[utoipa::path(
    get, path = "/api/v1/keys", tag = "access", operation_id = "list_keys",
    params(("business" = Option<String>, Query, description = "Only this business' keys (a business' key sees only its own)")),
    responses(
        (status = 200, description = "The keys, without their secrets", body = KeyList),
        (status = 404, description = "Not the caller's business", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<JsonResponse<KeyList>> {
    let business = caller.scope(q.business)?;
    let keys = keys::list(state.engine.db(), business.as_deref()).await?;
    Ok(JsonResponse(KeyList { keys }))
}

/// Revokes a key: it stops working at once, and its dashboard sessions end.
#[utoipa::path(
    delete, path = "/api/v1/keys/{id}", tag = "access", operation_id = "revoke_key",
    params(("id" = String, Path, description = "Key id (`key_…`)")),
    responses(
        (status = 200, description = "The revoked key", body = keys::ApiKey),
        (status = 404, description = "No such key (or not the caller's)", body = ErrorBody),
        (status = 409, description = "Already revoked, or the last usable operator key", body = ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<keys::ApiKey>> {
    let not_found = || ApiError::NotFound(format!("key {id} not found"));
    let key = keys::find(state.engine.db(), &id)
        .await?
        .ok_or_else(not_found)?;
    let reachable = match &key.business_id {
        Some(b) => caller.can_access(b),
        None => caller.business.is_none(),
    };
    if !reachable {
        return Err(not_found());
    }
    if key.business_id.is_none()
        && key.revoked_at.is_none()
        && keys::operator_keys(state.engine.db(), true).await? <= 1
    {
        return Err(ApiError::Conflict(
            "the last usable operator key cannot be revoked: create another first".into(),
        ));
    }
    let mut tx = state.engine.db().begin().await?;
    let revoked = keys::revoke(&mut tx, &id).await?;
    tx.commit().await?;
    if !revoked {
        return Err(ApiError::Conflict(format!("key {id} is already revoked")));
    }
    record(&state, &caller, "key.revoked", &key).await?;
    let key = keys::find(state.engine.db(), &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(JsonResponse(key))
}
