//! HTTP handlers, one module per resource.

pub mod analytics;
pub mod audit;
pub mod backtests;
pub mod business_config;
pub mod businesses;
pub mod dead_letters;
pub mod do_not_call;
pub mod events;
pub mod exports;
pub mod imports;
pub mod keys;
pub mod leads;
pub mod overview;
pub mod personalize;
pub mod runs;
pub mod schedules;
pub mod scripts;
pub mod sessions;
pub mod webhooks;

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// Answer of `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// `GET /healthz`: the process is alive (it answers; nothing else is checked).
#[utoipa::path(
    get, path = "/healthz", tag = "health", operation_id = "health", security(()),
    responses((status = 200, description = "Alive", body = Health))
)]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Answer of `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// Always `ready` (a failed check answers 503).
    pub status: &'static str,
    pub checks: ReadyChecks,
}

/// Each check of `GET /readyz`: `ok`, or what is wrong.
#[derive(Serialize, ToSchema)]
pub struct ReadyChecks {
    /// The database answers.
    pub database: String,
    /// Every migration of this build is applied.
    pub migrations: String,
    /// This process' workers heartbeat (or it runs none).
    pub workers: String,
}

/// `GET /readyz`: whether this process can do its work: the database answers, every migration
/// of this build is applied, and its workers heartbeat (when it runs any).
#[utoipa::path(
    get, path = "/readyz", tag = "health", operation_id = "ready", security(()),
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "A check failed; `details` holds every check", body = crate::error::ErrorBody),
    )
)]
pub async fn ready(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
) -> crate::error::ApiResult<Json<Ready>> {
    // Each check passes (`Ok`) or fails (`Err`) with the text an operator reads.
    let ok = || Ok::<String, String>("ok".into());
    let (database, migrations) =
        match switchboard_engine::pending_migrations(state.engine.db()).await {
            Ok(0) => (ok(), ok()),
            Ok(n) => (ok(), Err(format!("{n} not applied"))),
            Err(e) => (Err(format!("unreachable: {e}")), Err("unknown".into())),
        };
    let workers = match state.worker_name.as_deref() {
        None => Ok("not run by this process".into()),
        Some(name) => match state.engine.workers_alive(name).await {
            Ok(true) => ok(),
            Ok(false) => Err("not heartbeating".into()),
            Err(e) => Err(format!("unknown: {e}")),
        },
    };
    let ready = [&database, &migrations, &workers].iter().all(|c| c.is_ok());
    let text = |check: Result<String, String>| check.unwrap_or_else(|e| e);
    let checks = ReadyChecks {
        database: text(database),
        migrations: text(migrations),
        workers: text(workers),
    };
    if ready {
        Ok(Json(Ready {
            status: "ready",
            checks,
        }))
    } else {
        Err(crate::error::ApiError::Unavailable {
            message: "not ready".into(),
            details: serde_json::to_value(checks).unwrap_or_default(),
        })
    }
}

/// `GET /queue`: the apalis queue view (apalis-board) on its own listener.
#[utoipa::path(
    get, path = "/queue", tag = "health", operation_id = "queue_board",
    responses((status = 307, description = "Redirect to the apalis queue view (apalis-board), \
        served read-only on `SWITCHBOARD_QUEUE_BOARD_ADDR`"))
)]
pub async fn queue_board(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    caller: crate::tenant::Caller,
) -> crate::error::ApiResult<axum::response::Redirect> {
    caller.require_operator()?;
    Ok(axum::response::Redirect::temporary(&state.queue_board_url))
}
