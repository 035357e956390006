//! The router: every route with its handler, body limit and access rule, the request span, and
//! cross-origin access. A test in `openapi` reads this file to check every route is documented.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, JSON_BODY_LIMIT};
use crate::routes;
use crate::state::AppState;

/// Cross-origin access for browser frontends on `origins` (`*`: any; empty: none).
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<_> = origins.iter().filter(|o| !o.is_empty()).collect();
    let allow = if origins.iter().any(|o| o.as_str() == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static(crate::access::CSRF_HEADER),
        ])
        .expose_headers([HeaderName::from_static("idempotent-replayed")])
        .max_age(Duration::from_secs(600))
}

/// The router: API, webhooks, health and dashboard. Every route needs an API key or a
/// dashboard session except health, the OpenAPI document, the signed webhooks and sign-in (rate
/// limited per client address instead), and the dashboard's static pages.
pub fn app(state: AppState) -> Router {
    let authenticated = Router::new()
        .route("/api/v1/leads", post(routes::leads::create))
        .route(
            "/api/v1/leads/{id}",
            get(routes::leads::show).delete(routes::leads::erase),
        )
        .route("/api/v1/runs", get(routes::runs::list))
        .route("/api/v1/runs/counts", get(routes::runs::counts))
        .route("/api/v1/overview", get(routes::overview::overview))
        .route("/api/v1/analytics", get(routes::analytics::analytics))
        .route("/api/v1/events", get(routes::events::stream))
        .route("/api/v1/runs/{id}", get(routes::runs::show))
        .route("/api/v1/runs/{id}/cancel", post(routes::runs::cancel))
        .route("/api/v1/runs/{id}/retry", post(routes::runs::retry))
        .route("/api/v1/runs/{id}/resume", post(routes::runs::resume))
        .route(
            "/api/v1/businesses",
            get(routes::businesses::list).post(routes::business_config::create),
        )
        .route("/api/v1/businesses/{id}", get(routes::businesses::show))
        .route(
            "/api/v1/businesses/{id}/config",
            get(routes::business_config::show)
                .put(routes::business_config::put)
                .patch(routes::business_config::patch),
        )
        .route(
            "/api/v1/businesses/{id}/config/versions",
            get(routes::business_config::versions),
        )
        .route(
            "/api/v1/businesses/{id}/config/versions/{version}",
            get(routes::business_config::version),
        )
        .route(
            "/api/v1/businesses/{id}/usage",
            get(routes::businesses::usage),
        )
        .route(
            "/api/v1/businesses/{id}/script/versions",
            get(routes::scripts::versions),
        )
        .route(
            "/api/v1/businesses/{id}/script/versions/{version}",
            get(routes::scripts::version),
        )
        .route("/api/v1/scripts/reference", get(routes::scripts::reference))
        .route(
            "/api/v1/keys",
            get(routes::keys::list).post(routes::keys::create),
        )
        .route(
            "/api/v1/keys/{id}",
            axum::routing::delete(routes::keys::revoke),
        )
        .route(
            "/api/v1/sessions/current",
            get(routes::sessions::current).delete(routes::sessions::sign_out),
        )
        .route("/api/v1/audit", get(routes::audit::list))
        .route("/api/v1/exports/leads", get(routes::exports::leads))
        .route("/api/v1/exports/runs", get(routes::exports::runs))
        .route("/api/v1/schedules", get(routes::schedules::list))
        .route(
            "/api/v1/businesses/{id}/schedules/{name}/pause",
            post(routes::schedules::pause),
        )
        .route(
            "/api/v1/businesses/{id}/schedules/{name}/resume",
            post(routes::schedules::resume),
        )
        .route(
            "/api/v1/businesses/{id}/do-not-call/{phone}",
            get(routes::do_not_call::check).delete(routes::do_not_call::remove),
        )
        .route("/api/v1/dead-letters", get(routes::dead_letters::list))
        .route("/api/v1/dead-letters/{id}", get(routes::dead_letters::show))
        .route(
            "/api/v1/dead-letters/{id}/replay",
            post(routes::dead_letters::replay),
        )
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .route(
            "/api/v1/businesses/{id}/script",
            get(routes::scripts::show)
                .put(routes::scripts::put)
                .layer(DefaultBodyLimit::max(crate::error::SCRIPT_BODY_LIMIT)),
        )
        .route(
            "/api/v1/businesses/{id}/script/validate",
            post(routes::scripts::validate)
                .layer(DefaultBodyLimit::max(crate::error::SCRIPT_BODY_LIMIT)),
        )
        .route(
            "/api/v1/leads/import",
            post(routes::imports::import).layer(DefaultBodyLimit::max(routes::imports::BODY_LIMIT)),
        )
        .route("/api/v1/imports/{id}", get(routes::imports::show))
        .route(
            "/api/v1/businesses/{id}/do-not-call",
            get(routes::do_not_call::list)
                .post(routes::do_not_call::add)
                .layer(DefaultBodyLimit::max(routes::do_not_call::BODY_LIMIT)),
        )
        .route(
            "/api/v1/businesses/{id}/script/dry-run",
            post(routes::scripts::dry_run)
                .layer(DefaultBodyLimit::max(crate::error::SCRIPT_BODY_LIMIT)),
        )
        .route(
            "/api/v1/businesses/{id}/script/backtest",
            post(routes::backtests::start)
                .layer(DefaultBodyLimit::max(crate::error::SCRIPT_BODY_LIMIT)),
        )
        .route("/api/v1/backtests/{id}", get(routes::backtests::show))
        .route("/metrics", get(crate::prometheus::metrics))
        .route("/queue", get(routes::queue_board))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::access::authenticate,
        ));
    let public = Router::new()
        .route(
            "/api/v1/sessions",
            post(routes::sessions::sign_in).layer(DefaultBodyLimit::max(JSON_BODY_LIMIT)),
        )
        .route(
            "/api/v1/webhooks/elevenlabs/personalize",
            post(routes::personalize::personalize).layer(DefaultBodyLimit::max(JSON_BODY_LIMIT)),
        )
        .route(
            "/api/v1/webhooks/elevenlabs",
            post(routes::webhooks::elevenlabs),
        )
        .route("/api/v1/webhooks/retell", post(routes::webhooks::retell))
        .route_layer(axum::middleware::from_fn_with_state(
            state.limits.clone(),
            crate::limits::limit_by_address,
        ))
        .route("/healthz", get(routes::health))
        .route("/readyz", get(routes::ready))
        .route("/api/v1/openapi.json", get(crate::openapi::document));
    let api = public
        .merge(authenticated)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(axum::middleware::from_fn(
            crate::storable::refuse_nul_in_url,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.request_timeout,
            crate::limits::time_limit,
        ))
        .layer(axum::middleware::from_fn(crate::prometheus::track))
        // A span per request (by route pattern: paths and queries can hold a lead's phone);
        // 5xx are logged once, by the error type.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_failure(()),
        )
        .layer(cors(&state.cors_origins))
        .with_state(state);
    api.merge(switchboard_dashboard::router())
}

/// The span a request's logs (and Sentry events) carry.
fn request_span(request: &axum::extract::Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    tracing::info_span!("request", method = %request.method(), route)
}
