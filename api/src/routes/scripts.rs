//! A business' script: read, validate, dry-run, store a new version (validated, then active),
//! list versions; and the host API reference for authors.

use axum::Json as JsonResponse;
use axum::extract::State;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_workflows::business::{Business, Objective};
use switchboard_workflows::policy::{
    CallContext, Decided, FollowUpDecision, LeadView, RouteDecision, RunView, Score,
};
use switchboard_workflows::providers::openai::CallAnalysis;
use switchboard_workflows::scripting::host_api::{self, FnDoc, HistoryEntry, sample_lead};
use switchboard_workflows::scripting::sandbox::ScriptError;
use switchboard_workflows::scripting::validate::{self, HOOKS, Report};
use switchboard_workflows::store;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult, SCRIPT_BODY_LIMIT, invalid_script};
use crate::extract::{Json, Path};
use crate::state::AppState;
use crate::tenant::Caller;
use crate::tenant::business as find;
use crate::time::rfc3339;

/// A script source sent by an author.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceBody {
    /// The whole `policy.rhai`.
    pub source: String,
}

/// A script version with its source.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScriptVersionAnswer {
    pub business: String,
    /// 1, 2, … per business.
    pub version: i64,
    /// SHA-256 of the source, hex.
    pub hash: String,
    /// Whether it is the business' active version.
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
    /// The whole `policy.rhai`.
    pub source: String,
}

impl From<&store::scripts::ScriptVersion> for ScriptVersionAnswer {
    fn from(v: &store::scripts::ScriptVersion) -> ScriptVersionAnswer {
        ScriptVersionAnswer {
            business: v.business_id.clone(),
            version: v.version,
            hash: v.hash.clone(),
            active: v.active,
            created_at: rfc3339(v.created_at),
            source: v.source.clone(),
        }
    }
}

/// Answer of `PUT /api/v1/businesses/{id}/script`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredScript {
    pub business: String,
    /// The active version now.
    pub version: i64,
    pub hash: String,
    /// Whether a new version was stored (`false`: the source is the active one's).
    pub changed: bool,
    /// The entry points the script defines.
    pub hooks: Vec<String>,
    /// Each `fn test_*()` and how it went.
    pub tests: Vec<validate::TestOutcome>,
}

/// A script version in `GET …/script/versions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScriptVersionInfo {
    pub version: i64,
    pub hash: String,
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// Answer of `GET …/script/versions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScriptVersions {
    pub business: String,
    /// Newest first.
    pub versions: Vec<ScriptVersionInfo>,
}

/// Answer of `GET /api/v1/scripts/reference`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reference {
    /// The entry points a script may define.
    pub hooks: &'static [validate::Hook],
    /// The host functions.
    pub functions: Vec<FnDoc>,
    /// All of it as Markdown.
    pub markdown: String,
}

/// A hook's decision in a dry run.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryDecision<T> {
    /// The script's decision, or the default.
    pub decision: T,
    /// What the script logged.
    pub log: Vec<String>,
    /// Why the default was taken although the script defines the hook.
    pub error: Option<ScriptError>,
}

impl<T> From<Decided<T>> for DryDecision<T> {
    fn from(d: Decided<T>) -> DryDecision<T> {
        DryDecision {
            decision: d.value,
            log: d.log,
            error: d.error,
        }
    }
}

/// Every hook's decision in a dry run.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryDecisions {
    pub context: DryDecision<CallContext>,
    pub route: DryDecision<RouteDecision>,
    pub score: DryDecision<Score>,
    pub follow_up: DryDecision<FollowUpDecision>,
    pub on_no_answer: DryDecision<FollowUpDecision>,
}

/// What the script's top level logged, or its error.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preamble {
    pub log: Vec<String>,
    pub error: Option<ScriptError>,
}

/// Answer of `POST …/script/dry-run`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRun {
    pub business: String,
    /// SHA-256 of the source tried (`null` without a script).
    pub hash: Option<String>,
    /// The business' words, as the script left them.
    pub terminology: BTreeMap<String, String>,
    /// The objectives, as the script left them.
    pub objectives: Vec<Objective>,
    pub preamble: Preamble,
    /// The lead the hooks saw.
    pub lead: LeadView,
    pub decisions: DryDecisions,
}

/// `GET /api/v1/businesses/{id}/script` → the active version and its source.
#[utoipa::path(
    get, path = "/api/v1/businesses/{id}/script", tag = "scripts", operation_id = "get_script",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    responses((status = 200, description = "The active version", body = ScriptVersionAnswer), (status = 404, description = "No such business or no script", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<ScriptVersionAnswer>> {
    find(&state, &caller, &id).await?;
    let active = store::scripts::active(state.engine.db(), &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("business {id:?} has no script")))?;
    Ok(JsonResponse(ScriptVersionAnswer::from(&active)))
}

/// `PUT /api/v1/businesses/{id}/script` → validates, stores a new version and activates it.
/// Runs in flight keep the version they started with. 422 `invalid_script` if not valid.
#[utoipa::path(
    put, path = "/api/v1/businesses/{id}/script", tag = "scripts", operation_id = "put_script",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    request_body(content = SourceBody, description = "The script", content_type = "application/json"),
    responses((status = 200, description = "The stored, active version", body = StoredScript), (status = 404, description = "No such business", body = ErrorBody), (status = 422, description = "`invalid_script`: errors and failed tests with line and column", body = ErrorBody))
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<SourceBody, SCRIPT_BODY_LIMIT>,
) -> ApiResult<JsonResponse<StoredScript>> {
    let business = find(&state, &caller, &id).await?;
    let report = validate::validate(state.policy.host(), &business, &body.source).await;
    if !report.valid {
        return Err(invalid_script(report.problems(), Some(&report)));
    }
    let mut tx = state.engine.db().begin().await?;
    let (version, changed) =
        store::scripts::store_and_activate(&mut tx, &id, &report.hash, &body.source).await?;
    tx.commit().await?;
    tracing::info!(business = %id, version, hash = %report.hash, "script version activated");
    if changed {
        let detail = json!({ "version": version, "hash": report.hash });
        crate::access::audit(&state, &caller, Some(&id), "script.activated", &id, detail).await?;
    }
    Ok(JsonResponse(StoredScript {
        business: id,
        version,
        hash: report.hash,
        changed,
        hooks: report.hooks,
        tests: report.tests,
    }))
}

/// `POST /api/v1/businesses/{id}/script/validate` → the validation report; changes nothing.
#[utoipa::path(
    post, path = "/api/v1/businesses/{id}/script/validate", tag = "scripts", operation_id = "validate_script",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    request_body(content = SourceBody, description = "The script", content_type = "application/json"),
    responses((status = 200, description = "The validation report", body = Report), (status = 404, description = "No such business", body = ErrorBody))
)]
pub async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<SourceBody, SCRIPT_BODY_LIMIT>,
) -> ApiResult<JsonResponse<Report>> {
    let business = find(&state, &caller, &id).await?;
    Ok(JsonResponse(
        validate::validate(state.policy.host(), &business, &body.source).await,
    ))
}

/// A dry run: a script (default: the active one), a lead and an analysis (default: samples).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunBody {
    /// The source to try; the active version if absent.
    #[serde(default)]
    pub source: Option<String>,
    /// Lead values to use instead of the sample lead's.
    #[serde(default)]
    pub lead: DryRunLead,
    /// The analysis `score` receives (default: every dimension medium).
    #[serde(default)]
    pub analysis: Option<CallAnalysis>,
    /// Earlier calls `context` and `history()` see.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

/// Lead values for a dry run; absent ones come from the sample lead.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunLead {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub source: Option<String>,
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub custom_fields: serde_json::Map<String, Value>,
    pub call_attempt: Option<u32>,
}

/// `POST /api/v1/businesses/{id}/script/dry-run` → every hook's decision (or the default and
/// the script error), with what the script logged. Changes nothing.
#[utoipa::path(
    post, path = "/api/v1/businesses/{id}/script/dry-run", tag = "scripts", operation_id = "dry_run_script",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    request_body(content = DryRunBody, description = "What to try", content_type = "application/json"),
    responses((status = 200, description = "Every hook's decision", body = DryRun), (status = 404, description = "No such business", body = ErrorBody), (status = 422, description = "Invalid input", body = ErrorBody))
)]
pub async fn dry_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<DryRunBody, SCRIPT_BODY_LIMIT>,
) -> ApiResult<JsonResponse<DryRun>> {
    let business = find(&state, &caller, &id).await?;
    let source = match body.source {
        Some(s) => s,
        None => store::scripts::active(state.engine.db(), &id)
            .await?
            .map(|v| v.source)
            .unwrap_or_default(),
    };
    let lead = dry_run_lead(&state, &business, body.lead)?;
    let analysis = body
        .analysis
        .unwrap_or_else(switchboard_workflows::policy::sample_analysis);
    let decider = state
        .policy
        .for_source(&business, lead.clone(), &source, body.history)
        .await
        .map_err(|e| invalid_script(vec![e], None))?;
    let context = decider.context().await;
    let route = decider.route().await;
    let score = decider.score(&analysis).await;
    let run = |outcome: &str, scored| {
        let max = business.calling.max_call_attempts;
        RunView::after_call("run_dry_run".into(), max, lead.clone(), outcome, scored)
    };
    let follow_up = decider
        .follow_up(run("connected", Some(&score.value)))
        .await;
    let on_no_answer = decider.on_no_answer(run("no_answer", None)).await;
    let effective = decider.business();
    let preamble = decider.preamble();
    Ok(JsonResponse(DryRun {
        business: id,
        hash: decider.script_hash().map(str::to_owned),
        terminology: effective.terminology.clone(),
        objectives: effective.objectives.clone(),
        preamble: Preamble {
            log: preamble.log.clone(),
            error: preamble.error.clone(),
        },
        lead,
        decisions: DryDecisions {
            context: context.into(),
            route: route.into(),
            score: score.into(),
            follow_up: follow_up.into(),
            on_no_answer: on_no_answer.into(),
        },
    }))
}

fn dry_run_lead(state: &AppState, business: &Business, given: DryRunLead) -> ApiResult<LeadView> {
    business
        .check_custom_fields(&given.custom_fields)
        .map_err(|m| ApiError::invalid("invalid_custom_fields", "lead.custom_fields", m))?;
    let mut lead = sample_lead(state.policy.now());
    lead.name = given.name.unwrap_or(lead.name);
    lead.phone = given.phone.unwrap_or(lead.phone);
    lead.email = given.email.or(lead.email);
    lead.source = given.source.or(lead.source);
    lead.fields = given.custom_fields;
    lead.call_attempt = given.call_attempt.unwrap_or(1).max(1);
    Ok(lead)
}

/// `GET /api/v1/businesses/{id}/script/versions` → every version, newest first.
#[utoipa::path(
    get, path = "/api/v1/businesses/{id}/script/versions", tag = "scripts", operation_id = "list_script_versions",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    responses((status = 200, description = "Versions, newest first", body = ScriptVersions), (status = 404, description = "No such business", body = ErrorBody))
)]
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<ScriptVersions>> {
    find(&state, &caller, &id).await?;
    let versions = store::scripts::versions(state.engine.db(), &id).await?;
    let versions = versions
        .iter()
        .map(|v| ScriptVersionInfo {
            version: v.version,
            hash: v.hash.clone(),
            active: v.active,
            created_at: rfc3339(v.created_at),
        })
        .collect();
    Ok(JsonResponse(ScriptVersions {
        business: id,
        versions,
    }))
}

/// `GET /api/v1/businesses/{id}/script/versions/{version}` → that version's source.
#[utoipa::path(
    get, path = "/api/v1/businesses/{id}/script/versions/{version}", tag = "scripts", operation_id = "get_script_version",
    params(("id" = String, Path, description = "Business id", example = "demo"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, description = "The version with its source", body = ScriptVersionAnswer), (status = 404, description = "No such business or version", body = ErrorBody))
)]
pub async fn version(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, version)): Path<(String, i64)>,
) -> ApiResult<JsonResponse<ScriptVersionAnswer>> {
    find(&state, &caller, &id).await?;
    let v = store::scripts::version(state.engine.db(), &id, version)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("business {id:?} has no script version {version}"))
        })?;
    Ok(JsonResponse(ScriptVersionAnswer::from(&v)))
}

/// `GET /api/v1/scripts/reference` → the entry points and the host functions, generated from
/// the registered functions.
#[utoipa::path(
    get, path = "/api/v1/scripts/reference", tag = "scripts", operation_id = "script_reference",
    responses((status = 200, description = "Entry points and host functions (JSON and Markdown)", body = Reference))
)]
pub async fn reference(State(state): State<AppState>) -> JsonResponse<Reference> {
    let engine = state.policy.host().engine();
    JsonResponse(Reference {
        hooks: HOOKS,
        functions: host_api::reference(engine),
        markdown: host_api::reference_markdown(engine),
    })
}
