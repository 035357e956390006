//! The operator dashboard: embedded HTML/JS/CSS pages over the JSON API.
//!
//! Dashboard v0 is a single HTML shell plus its scripts (the dashboard's, and the business
//! page's backtest view in a file of its own) and one stylesheet, all compiled into the binary with `include_str!` (no front-end build step, no
//! third-party assets). The pages are static; everything they show is fetched
//! by the browser from the same-origin JSON API under `/api/v1`.
//!
//! Routes:
//! - `GET /` — the runs list (filters, load more, refreshes every 2 s).
//! - `GET /runs/{id}` — one run's timeline (same HTML shell; the script reads
//!   the id from `location.pathname`, the server never looks at it).
//! - `GET /overview` — the analytics of the period's leads (funnel, outcomes, scores, calls by
//!   agent, campaign and objective) and each business' activity.
//! - `GET /businesses`, `GET /businesses/{id}` — the businesses, one business'
//!   configuration and script (highlighted), its versions, validate, dry-run and backtest.
//! - `GET /schedules` — the cron campaigns, with their next and last ticks, paused and resumed
//!   from there.
//! - `GET /dead-letters` — webhooks whose processing failed, each with a replay button
//!   (operators).
//! - `GET /assets/dashboard.js`, `GET /assets/backtest.js`, `GET /assets/dashboard.css` — the
//!   assets.
//!
//! Every response carries `cache-control: no-cache`, so a redeployed binary is
//! picked up on the next page load. The HTML also carries a strict
//! content-security-policy: the pages use no inline script or style, and the
//! script only talks to its own origin.
//!
//! The router sets no fallback, so it can be `merge`d into the API router.

use axum::{
    Router,
    http::{HeaderName, HeaderValue, header},
    response::IntoResponse,
    routing::get,
};

/// The HTML shell served for every page.
const INDEX_HTML: &str = include_str!("../assets/index.html");
/// The dashboard script (vanilla JS, no dependencies).
const DASHBOARD_JS: &str = include_str!("../assets/dashboard.js");
/// The business page's backtest view (loaded before the dashboard script, which starts it).
const BACKTEST_JS: &str = include_str!("../assets/backtest.js");
/// The dashboard stylesheet.
const DASHBOARD_CSS: &str = include_str!("../assets/dashboard.css");

const HTML_CONTENT_TYPE: &str = "text/html; charset=utf-8";
const JS_CONTENT_TYPE: &str = "text/javascript; charset=utf-8";
const CSS_CONTENT_TYPE: &str = "text/css; charset=utf-8";

/// Only same-origin script, style and API calls; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The dashboard routes, ready to be merged into the API router.
///
/// Routes: `GET /` (runs list), `GET /runs/{id}` (one run's timeline), `GET /businesses[/{id}]`,
/// `GET /assets/dashboard.js`, `GET /assets/backtest.js`, `GET /assets/dashboard.css`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/runs/{id}", get(index))
        .route("/overview", get(index))
        .route("/businesses", get(index))
        .route("/businesses/{id}", get(index))
        .route("/schedules", get(index))
        .route("/dead-letters", get(index))
        .route("/assets/dashboard.js", get(script))
        .route("/assets/backtest.js", get(backtest_script))
        .route("/assets/dashboard.css", get(stylesheet))
}

/// The HTML shell; the script decides which view to show from the path.
async fn index() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(HTML_CONTENT_TYPE),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ),
        ],
        INDEX_HTML,
    )
}

async fn script() -> impl IntoResponse {
    asset(JS_CONTENT_TYPE, DASHBOARD_JS)
}

async fn backtest_script() -> impl IntoResponse {
    asset(JS_CONTENT_TYPE, BACKTEST_JS)
}

async fn stylesheet() -> impl IntoResponse {
    asset(CSS_CONTENT_TYPE, DASHBOARD_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    let headers: [(HeaderName, HeaderValue); 3] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    (headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{
        body::{Body, to_bytes},
        http::{Method, Request, StatusCode},
    };
    use tower::ServiceExt;

    async fn get_path(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        get_with(Method::GET, path).await
    }

    async fn get_with(method: Method, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let app: Router = router::<()>();
        let response = app
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn header_str(headers: &axum::http::HeaderMap, name: HeaderName) -> &str {
        headers
            .get(&name)
            .unwrap_or_else(|| panic!("missing header {name}"))
            .to_str()
            .unwrap()
    }

    #[tokio::test]
    async fn runs_page_is_html() {
        let (status, headers, body) = get_path("/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            header_str(&headers, header::CONTENT_TYPE),
            HTML_CONTENT_TYPE
        );
        assert_eq!(header_str(&headers, header::CACHE_CONTROL), "no-cache");
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
        assert!(body.starts_with("<!doctype html>"));
        assert!(body.contains("Switchboard"));
        assert!(body.contains(r#"src="/assets/dashboard.js""#));
        // The backtest view is loaded first: the dashboard script starts it.
        let backtest = body
            .find(r#"src="/assets/backtest.js""#)
            .expect("backtest.js");
        assert!(backtest < body.find(r#"src="/assets/dashboard.js""#).unwrap());
        assert!(body.contains(r#"href="/assets/dashboard.css""#));
        for id in [
            "runs-table",
            "error-banner",
            "run-status",
            "timeline",
            "cancel-button",
            "backtest-button",
            "backtest-tags",
            "backtest-histogram",
            "backtest-samples",
        ] {
            assert!(body.contains(&format!(r#"id="{id}""#)), "missing #{id}");
        }
    }

    #[tokio::test]
    async fn run_page_is_the_same_shell() {
        let (status, headers, body) = get_path("/runs/0196a3b4-0000-7000-8000-000000000001").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            header_str(&headers, header::CONTENT_TYPE),
            HTML_CONTENT_TYPE
        );
        assert_eq!(header_str(&headers, header::CACHE_CONTROL), "no-cache");
        assert_eq!(body, INDEX_HTML);

        // The id is never interpreted (or echoed) by the server.
        let (status, _, body) = get_path("/runs/%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, INDEX_HTML);
    }

    #[tokio::test]
    async fn scripts_are_javascript() {
        for (path, script) in [
            ("/assets/dashboard.js", DASHBOARD_JS),
            ("/assets/backtest.js", BACKTEST_JS),
        ] {
            let (status, headers, body) = get_path(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(header_str(&headers, header::CONTENT_TYPE), JS_CONTENT_TYPE);
            assert_eq!(header_str(&headers, header::CACHE_CONTROL), "no-cache");
            assert_eq!(
                header_str(&headers, header::X_CONTENT_TYPE_OPTIONS),
                "nosniff"
            );
            assert_eq!(body, script, "{path}");
            // Data is only ever inserted as text.
            assert!(!body.contains("innerHTML"), "{path}");
            assert!(!body.contains("insertAdjacentHTML"), "{path}");
            assert!(!body.contains("document.write"), "{path}");
        }
    }

    #[tokio::test]
    async fn stylesheet_is_css() {
        let (status, headers, body) = get_path("/assets/dashboard.css").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header_str(&headers, header::CONTENT_TYPE), CSS_CONTENT_TYPE);
        assert_eq!(header_str(&headers, header::CACHE_CONTROL), "no-cache");
        assert_eq!(body, DASHBOARD_CSS);
    }

    #[tokio::test]
    async fn head_works_and_unknown_paths_are_not_found() {
        let (status, headers, _) = get_with(Method::HEAD, "/assets/dashboard.css").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header_str(&headers, header::CONTENT_TYPE), CSS_CONTENT_TYPE);

        for path in ["/assets/other.js", "/runs", "/runs/a/b"] {
            let (status, _, _) = get_path(path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (status, _, _) = get_with(Method::POST, "/").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
}
