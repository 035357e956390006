//! Businesses: their configuration and the script version in use.

use axum::Json as JsonResponse;
use axum::extract::State;
use serde::Serialize;
use switchboard_workflows::business::Business;
use switchboard_workflows::store;
use switchboard_workflows::store::calls::Usage;
use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::openapi::{RefOr, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::answers::ScriptRef;
use crate::error::ApiResult;
use crate::error::ErrorBody;
use crate::extract::Path;
use crate::state::AppState;
use crate::tenant::{Caller, business as find};

/// A business in `GET /api/v1/businesses`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BusinessSummary {
    pub id: String,
    pub name: String,
    pub industry: String,
    /// IANA.
    pub timezone: String,
}

/// Answer of `GET /api/v1/businesses`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BusinessList {
    pub businesses: Vec<BusinessSummary>,
}

/// Answer of `GET /api/v1/businesses/{id}`: the configuration with the active script version.
#[derive(Debug, Serialize)]
pub struct BusinessAnswer {
    #[serde(flatten)]
    pub config: Business,
    /// `null` while the business has no script.
    pub script: Option<ScriptRef>,
}

/// The configuration's schema with `script` beside its fields: a flattened `Business` would
/// keep its own `additionalProperties: false` and so forbid `script`.
impl utoipa::PartialSchema for BusinessAnswer {
    fn schema() -> RefOr<Schema> {
        let RefOr::T(Schema::Object(mut config)) = Business::schema() else {
            return ObjectBuilder::new().schema_type(Type::Object).into();
        };
        config.additional_properties = None;
        let script = utoipa::openapi::schema::OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name(ScriptRef::name()))
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .description(Some(
                "The active script version; `null` while there is none",
            ));
        config.properties.insert("script".into(), script.into());
        config.required.push("script".into());
        RefOr::T(Schema::Object(config))
    }
}

impl ToSchema for BusinessAnswer {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ScriptRef::name().into(), ScriptRef::schema()));
        Business::schemas(schemas);
    }
}

/// `GET /api/v1/businesses` → the businesses the caller may reach.
#[utoipa::path(
    get, path = "/api/v1/businesses", tag = "businesses", operation_id = "list_businesses",
    responses((status = 200, description = "The businesses the caller may reach", body = BusinessList))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<JsonResponse<BusinessList>> {
    let all = store::businesses(state.engine.db()).await?;
    let businesses = all
        .into_iter()
        .filter(|b| caller.can_access(&b.id))
        .map(|b| BusinessSummary {
            id: b.id,
            name: b.name,
            industry: b.industry,
            timezone: b.timezone,
        })
        .collect();
    Ok(JsonResponse(BusinessList { businesses }))
}

/// `GET /api/v1/businesses/{id}` → its configuration and active script version.
#[utoipa::path(
    get, path = "/api/v1/businesses/{id}", tag = "businesses", operation_id = "get_business",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    responses((status = 200, description = "The business' configuration and active script version", body = BusinessAnswer), (status = 404, description = "No such business", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<BusinessAnswer>> {
    let business = find(&state, &caller, &id).await?;
    let active = store::scripts::active(state.engine.db(), &id).await?;
    Ok(JsonResponse(BusinessAnswer {
        config: business,
        script: active.map(|s| ScriptRef {
            version: s.version,
            hash: s.hash,
        }),
    }))
}

/// Query of `GET /api/v1/businesses/{id}/usage`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
}

/// Answer of `GET /api/v1/businesses/{id}/usage`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BusinessUsage {
    pub business: String,
    /// RFC 3339.
    pub from: String,
    /// RFC 3339, exclusive.
    pub to: String,
    #[serde(flatten)]
    pub usage: Usage,
}

/// `GET /api/v1/businesses/{id}/usage?from=&to=` → the business' metered calls in the range.
#[utoipa::path(
    get, path = "/api/v1/businesses/{id}/usage", tag = "businesses", operation_id = "business_usage",
    params(
        ("id" = String, Path, description = "Business id", example = "demo"),
        ("from" = Option<String>, Query, format = DateTime, description = "From (RFC 3339; default 30 days ago)"),
        ("to" = Option<String>, Query, format = DateTime, description = "To, exclusive (RFC 3339; default now)"),
    ),
    responses(
        (status = 200, description = "The calls that ended in the range", body = BusinessUsage),
        (status = 404, description = "No such business", body = ErrorBody),
        (status = 422, description = "Invalid time", body = ErrorBody),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    crate::extract::Query(q): crate::extract::Query<UsageQuery>,
) -> ApiResult<JsonResponse<BusinessUsage>> {
    find(&state, &caller, &id).await?;
    let now = switchboard_engine::ids::now_ms();
    let to = crate::time::parse_time("to", q.to.as_deref())?.unwrap_or(now + 1);
    let from = crate::time::parse_time("from", q.from.as_deref())?.unwrap_or(now - 30 * 86_400_000);
    let usage = store::calls::usage(state.engine.db(), &id, from, to).await?;
    Ok(JsonResponse(BusinessUsage {
        business: id,
        from: crate::time::rfc3339(from),
        to: crate::time::rfc3339(to),
        usage,
    }))
}
