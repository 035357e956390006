//! Business configuration as data: a new business (operators), its configuration read,
//! replaced or patched (every change a new version, picked up by every process at once; runs
//! already started keep the version they started with), and its versions listed and compared.

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_workflows::business::{Business, Invalid};
use switchboard_workflows::scripting::validate;
use switchboard_workflows::store::{self, configs::ConfigVersion};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult, invalid_script};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use crate::store::keys;
use crate::tenant::Caller;
use crate::tenant::business as find;
use crate::time::rfc3339;

/// The script a new business starts with when none is given: every hook left to its
/// documented default.
pub const TEMPLATE_SCRIPT: &str = include_str!("../../../scripts/new-business.rhai");

fn invalid_config(e: Invalid) -> ApiError {
    ApiError::invalid("invalid_config", &e.field, e.to_string())
}

/// A configuration version, as `GET …/config` and `GET …/config/versions/{version}` answer it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigVersionAnswer {
    pub business: String,
    /// 1, 2, … per business.
    pub version: i64,
    /// Whether it is the business' active version.
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
    pub config: Business,
    /// With `?diff_from=N`: the JSON patch (RFC 6902) from version N to this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub changes: Option<Value>,
}

impl ConfigVersionAnswer {
    fn of(business: &str, v: &ConfigVersion) -> ConfigVersionAnswer {
        ConfigVersionAnswer {
            business: business.to_owned(),
            version: v.version,
            active: v.active,
            created_at: rfc3339(v.created_at),
            config: v.config.clone(),
            changes: None,
        }
    }
}

/// A configuration version in `GET …/config/versions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigVersionInfo {
    pub version: i64,
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// Answer of `GET …/config/versions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigVersions {
    /// Newest first.
    pub versions: Vec<ConfigVersionInfo>,
}

/// Answer of `PUT` and `PATCH …/config`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedConfig {
    pub business: String,
    /// The active version now.
    pub version: i64,
    /// Whether a new version was made (`false`: nothing changed).
    pub changed: bool,
    pub config: Business,
}

/// Answer of `POST /api/v1/businesses`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedBusiness {
    /// Its id.
    pub business: String,
    /// Always 1.
    pub config_version: i64,
    /// Always 1.
    pub script_version: i64,
    /// The key asked for with `key_name`; `null` without.
    pub key: Option<BusinessKey>,
}

/// A new business' own key.
#[derive(Debug, Serialize, ToSchema)]
pub struct BusinessKey {
    /// `key_…`.
    pub id: String,
    pub name: String,
    /// The secret, `sbk_…`: shown in this answer only.
    pub key: String,
}

/// A JSON merge patch (RFC 7396) of the configuration: any of its fields, objects merged.
pub struct ConfigPatch;

/// The configuration's schema with no field required (and `null` removes, which the schema
/// does not say).
impl utoipa::PartialSchema for ConfigPatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::Schema;
        let mut schema = <Business as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.required.clear();
            object.description = Some(
                "A JSON merge patch (RFC 7396) of the configuration: given fields replace the \
                 current ones, objects merge, `null` removes"
                    .into(),
            );
        }
        schema
    }
}

impl ToSchema for ConfigPatch {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <Business as ToSchema>::schemas(schemas);
    }
}

/// `POST /api/v1/businesses`: a new business.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBusiness {
    /// The configuration: the content of a `business.toml`, as JSON.
    #[schema(value_type = Business)]
    pub config: Value,
    /// Its first script (default: the template, every hook left to its default).
    #[serde(default)]
    pub script: Option<String>,
    /// A key of its own, named so, shown once in the answer.
    #[serde(default)]
    pub key_name: Option<String>,
}

/// Creates a business with its configuration (version 1), its first script and, if asked, a
/// key of its own. Operators only.
#[utoipa::path(
    post, path = "/api/v1/businesses", tag = "businesses", operation_id = "create_business",
    request_body(content = NewBusiness, description = "The business: its configuration (the content of a business.toml), its first script (Rhai source; default: a template that keeps every default) and the name of a key of its own, if one is wanted", content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = CreatedBusiness),
        (status = 403, description = "Not an operator key", body = ErrorBody),
        (status = 409, description = "A business with that id exists", body = ErrorBody),
        (status = 422, description = "`invalid_config` (`details.field` names the field, e.g. `calling.legal_hours`), `invalid_script` or `invalid_name`", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, JsonResponse<CreatedBusiness>)> {
    // Who may, before what: a business' key learns nothing from how its body would be read.
    caller.require_operator()?;
    let new: NewBusiness = serde_path_to_error::deserialize(body).map_err(|e| {
        ApiError::invalid("invalid_body", &e.path().to_string(), e.inner().to_string())
    })?;
    let business = Business::from_json(new.config).map_err(invalid_config)?;
    let script = new.script.as_deref().unwrap_or(TEMPLATE_SCRIPT);
    let report = validate::validate(state.policy.host(), &business, script).await;
    if !report.valid {
        return Err(invalid_script(report.problems(), Some(&report)));
    }
    let key_name = new.key_name.as_deref().map(str::trim);
    if key_name.is_some_and(|n| n.is_empty() || n.chars().count() > 100) {
        return Err(ApiError::invalid(
            "invalid_name",
            "key_name",
            "key_name must be 1 to 100 characters",
        ));
    }
    let id = business.id.clone();
    let mut tx = state.engine.db().begin().await?;
    if !store::configs::create(&mut tx, &business).await? {
        return Err(ApiError::Conflict(format!("business {id:?} exists")));
    }
    store::scripts::store_and_activate(&mut tx, &id, &report.hash, script).await?;
    let key = match key_name {
        Some(name) => {
            let (key_id, secret) = (keys::new_id(), keys::generate());
            keys::insert(&mut tx, &key_id, Some(&id), name, &secret).await?;
            Some(BusinessKey {
                id: key_id,
                name: name.to_owned(),
                key: secret,
            })
        }
        None => None,
    };
    tx.commit().await?;
    let detail = json!({ "config_version": 1, "script_hash": report.hash, "key": key.as_ref().map(|k| &k.id) });
    crate::access::audit(&state, &caller, Some(&id), "business.created", &id, detail).await?;
    Ok((
        StatusCode::CREATED,
        JsonResponse(CreatedBusiness {
            business: id,
            config_version: 1,
            script_version: 1,
            key,
        }),
    ))
}

/// The business' active configuration.
#[utoipa::path(
    get, path = "/api/v1/businesses/{id}/config", tag = "businesses", operation_id = "get_business_config",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    responses((status = 200, description = "The active version", body = ConfigVersionAnswer), (status = 404, description = "No such business", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<ConfigVersionAnswer>> {
    find(&state, &caller, &id).await?;
    let active = store::configs::active(state.engine.db(), &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("business {id:?} has no configuration")))?;
    Ok(JsonResponse(ConfigVersionAnswer::of(&id, &active)))
}

/// Replaces the whole configuration: a new version, unless nothing changed.
#[utoipa::path(
    put, path = "/api/v1/businesses/{id}/config", tag = "businesses", operation_id = "put_business_config",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    request_body(content = Business, description = "The whole configuration (as `GET` answers it under `config`; `id` may be left out, and must be the business' own)", content_type = "application/json"),
    responses(
        (status = 200, description = "Saved", body = SavedConfig),
        (status = 404, description = "No such business", body = ErrorBody),
        (status = 422, description = "`invalid_config`: `details.field` names the field; nothing changed", body = ErrorBody),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(mut config): Json<Value>,
) -> ApiResult<JsonResponse<SavedConfig>> {
    find(&state, &caller, &id).await?;
    if let Some(fields) = config.as_object_mut() {
        fields.entry("id").or_insert_with(|| json!(id));
    }
    let business = Business::from_json(config).map_err(invalid_config)?;
    save(&state, &caller, &id, business).await
}

/// Changes part of the configuration with a JSON merge patch (RFC 7396): given fields replace
/// the current ones, objects merge, `null` removes. A new version, unless nothing changed.
#[utoipa::path(
    patch, path = "/api/v1/businesses/{id}/config", tag = "businesses", operation_id = "patch_business_config",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    request_body(content = ConfigPatch, description = "A JSON merge patch (RFC 7396) of the configuration, e.g. `{\"calling\": {\"legal_hours\": \"09:00-20:00\"}, \"terminology\": {\"lead\": \"patient\"}}`", content_type = "application/json"),
    responses(
        (status = 200, description = "Saved", body = SavedConfig),
        (status = 404, description = "No such business", body = ErrorBody),
        (status = 422, description = "`invalid_config`: `details.field` names the field; nothing changed", body = ErrorBody),
    )
)]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(patch): Json<Value>,
) -> ApiResult<JsonResponse<SavedConfig>> {
    let current = find(&state, &caller, &id).await?;
    let business = current.patched(&patch).map_err(invalid_config)?;
    save(&state, &caller, &id, business).await
}

async fn save(
    state: &AppState,
    caller: &Caller,
    id: &str,
    business: Business,
) -> ApiResult<JsonResponse<SavedConfig>> {
    if business.id != id {
        return Err(ApiError::invalid(
            "invalid_config",
            "id",
            format!("id: a business keeps its id ({id:?})"),
        ));
    }
    let mut tx = state.engine.db().begin().await?;
    let (version, changed) = store::configs::store_and_activate(&mut tx, &business).await?;
    tx.commit().await?;
    if changed {
        tracing::info!(business = %id, version, "configuration version activated");
        let detail = json!({ "version": version });
        crate::access::audit(state, caller, Some(id), "config.changed", id, detail).await?;
    }
    Ok(JsonResponse(SavedConfig {
        business: id.to_owned(),
        version,
        changed,
        config: business,
    }))
}

/// Every version of the configuration, newest first.
#[utoipa::path(
    get, path = "/api/v1/businesses/{id}/config/versions", tag = "businesses", operation_id = "list_business_config_versions",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    responses((status = 200, description = "The versions, newest first", body = ConfigVersions), (status = 404, description = "No such business", body = ErrorBody))
)]
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<ConfigVersions>> {
    find(&state, &caller, &id).await?;
    let versions = store::configs::versions(state.engine.db(), &id).await?;
    let versions = versions
        .iter()
        .map(|v| ConfigVersionInfo {
            version: v.version,
            active: v.active,
            created_at: rfc3339(v.created_at),
        })
        .collect();
    Ok(JsonResponse(ConfigVersions { versions }))
}

async fn version_of(state: &AppState, id: &str, version: i64) -> ApiResult<ConfigVersion> {
    store::configs::version(state.engine.db(), id, version)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "business {id:?} has no configuration version {version}"
            ))
        })
}

/// Query of `GET /api/v1/businesses/{id}/config/versions/{version}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    /// Compare with this version.
    diff_from: Option<i64>,
}

/// One version; with `?diff_from=N`, also what changed from version N to it (a JSON patch,
/// RFC 6902).
#[utoipa::path(
    get, path = "/api/v1/businesses/{id}/config/versions/{version}", tag = "businesses", operation_id = "get_business_config_version",
    params(
        ("id" = String, Path, description = "Business id", example = "demo"),
        ("version" = i64, Path, description = "Version number"),
        ("diff_from" = Option<i64>, Query, description = "Also answer `changes`: a JSON patch (RFC 6902) from this version to this one"),
    ),
    responses((status = 200, description = "The version (with `changes` when asked)", body = ConfigVersionAnswer), (status = 404, description = "No such business or version", body = ErrorBody))
)]
pub async fn version(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, version)): Path<(String, i64)>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<JsonResponse<ConfigVersionAnswer>> {
    find(&state, &caller, &id).await?;
    let this = version_of(&state, &id, version).await?;
    let mut body = ConfigVersionAnswer::of(&id, &this);
    if let Some(from) = q.diff_from {
        let before = version_of(&state, &id, from).await?;
        let json = |b: &Business| serde_json::to_value(b).map_err(|e| ApiError::Internal(e.into()));
        let changes = json_patch::diff(&json(&before.config)?, &json(&this.config)?);
        body.changes =
            Some(serde_json::to_value(changes).map_err(|e| ApiError::Internal(e.into()))?);
    }
    Ok(JsonResponse(body))
}
