//! The operator dashboard: embedded HTML/JS/CSS pages over the JSON API.
//!
//! Dashboard v0 is a single HTML shell plus its scripts and one stylesheet, all compiled into
//! the binary with `include_str!` (no front-end build step, no bundler, no third-party assets).
//! The scripts are plain ES modules: the shell loads `main.js` (`<script type="module">`),
//! which picks the page from the path and imports the rest, one file per page (`runs.js`,
//! `run.js`, `overview.js`, `businesses.js` with `backtest.js` and `code.js`, `schedules.js`,
//! `dead-letters.js`, `session.js` for signing in) over what they share (`core.js`). The pages
//! are static; everything they show is fetched by the browser from the same-origin JSON API
//! under `/api/v1`.
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
//! - `GET /assets/{name}` — the scripts and the stylesheet, one route per entry of `ASSETS`
//!   (a fixed table: any other name under `/assets/` is not found).
//!
//! Every response carries `cache-control: no-cache`, so a redeployed binary is
//! picked up on the next page load. The HTML also carries a strict
//! content-security-policy: the pages use no inline script or style, and the
//! scripts (same-origin modules) only talk to their own origin.
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

const HTML_CONTENT_TYPE: &str = "text/html; charset=utf-8";
const JS_CONTENT_TYPE: &str = "text/javascript; charset=utf-8";
const CSS_CONTENT_TYPE: &str = "text/css; charset=utf-8";

/// An `ASSETS` entry: the file `assets/{name}`, compiled in, served as `content_type`.
macro_rules! embedded {
    ($name:literal, $content_type:expr) => {
        (
            $name,
            $content_type,
            include_str!(concat!("../assets/", $name)),
        )
    };
}

/// Everything served under `/assets/`: name, content type, content. The scripts are ES modules
/// (vanilla JS, no dependencies) importing each other by these names; `main.js` is the one the
/// HTML shell loads.
const ASSETS: &[(&str, &str, &str)] = &[
    // Startup and the router: picks the page, imports the rest.
    embedded!("main.js", JS_CONTENT_TYPE),
    // What every page shares: DOM helpers, formatting, api(), errors, polling.
    embedded!("core.js", JS_CONTENT_TYPE),
    // Signing in (any page without a session) and out.
    embedded!("session.js", JS_CONTENT_TYPE),
    // `/`: the runs list.
    embedded!("runs.js", JS_CONTENT_TYPE),
    // `/runs/{id}`: one run.
    embedded!("run.js", JS_CONTENT_TYPE),
    // `/overview`.
    embedded!("overview.js", JS_CONTENT_TYPE),
    // `/businesses` and `/businesses/{id}`, with the business page's backtest view and its
    // script highlighting.
    embedded!("businesses.js", JS_CONTENT_TYPE),
    embedded!("backtest.js", JS_CONTENT_TYPE),
    embedded!("code.js", JS_CONTENT_TYPE),
    // `/schedules`.
    embedded!("schedules.js", JS_CONTENT_TYPE),
    // `/dead-letters`.
    embedded!("dead-letters.js", JS_CONTENT_TYPE),
    // The stylesheet.
    embedded!("dashboard.css", CSS_CONTENT_TYPE),
];

/// Only same-origin script, style and API calls; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The dashboard routes, ready to be merged into the API router.
///
/// Routes: `GET /` (runs list), `GET /runs/{id}` (one run's timeline), `GET /overview`,
/// `GET /businesses[/{id}]`, `GET /schedules`, `GET /dead-letters`, and `GET /assets/{name}` for
/// each name in `ASSETS` (one route each, so any other path falls through to the router this
/// one is merged into).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let pages = Router::new()
        .route("/", get(index))
        .route("/runs/{id}", get(index))
        .route("/overview", get(index))
        .route("/businesses", get(index))
        .route("/businesses/{id}", get(index))
        .route("/schedules", get(index))
        .route("/dead-letters", get(index));
    ASSETS
        .iter()
        .fold(pages, |router, &(name, content_type, body)| {
            router.route(
                &format!("/assets/{name}"),
                get(move || async move { asset(content_type, body) }),
            )
        })
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
        // One script, the module that imports the rest.
        assert!(body.contains(r#"<script type="module" src="/assets/main.js"></script>"#));
        assert_eq!(body.matches("<script").count(), 1);
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

    /// The names a module imports (`… from './name.js'`).
    fn imports(script: &str) -> Vec<&str> {
        script
            .split("from './")
            .skip(1)
            .map(|rest| &rest[..rest.find('\'').expect("a closing quote")])
            .collect()
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_content_type() {
        for &(name, content_type, content) in ASSETS {
            let path = format!("/assets/{name}");
            let (status, headers, body) = get_path(&path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            let expected = if name.ends_with(".js") {
                JS_CONTENT_TYPE
            } else if name.ends_with(".css") {
                CSS_CONTENT_TYPE
            } else {
                panic!("{name}: neither a script nor a stylesheet")
            };
            assert_eq!(content_type, expected, "{path}");
            assert_eq!(
                header_str(&headers, header::CONTENT_TYPE),
                expected,
                "{path}"
            );
            assert_eq!(header_str(&headers, header::CACHE_CONTROL), "no-cache");
            assert_eq!(
                header_str(&headers, header::X_CONTENT_TYPE_OPTIONS),
                "nosniff"
            );
            assert_eq!(body, content, "{path}");
            if expected == JS_CONTENT_TYPE {
                // Each file says first what it is for.
                assert!(
                    body.starts_with("// Switchboard operator dashboard: "),
                    "{path}"
                );
                // Data is only ever inserted as text.
                assert!(!body.contains("innerHTML"), "{path}");
                assert!(!body.contains("insertAdjacentHTML"), "{path}");
                assert!(!body.contains("document.write"), "{path}");
            }
        }
        let names: std::collections::HashSet<&str> = ASSETS.iter().map(|a| a.0).collect();
        assert_eq!(names.len(), ASSETS.len(), "a name twice");
    }

    /// Every module is served, and every script served is used: the modules `main.js` imports,
    /// directly or not, are exactly the table's scripts.
    #[test]
    fn the_modules_and_the_table_agree() {
        let script = |name: &str| {
            ASSETS
                .iter()
                .find(|a| a.0 == name)
                .unwrap_or_else(|| panic!("{name} is imported but not in ASSETS"))
                .2
        };
        let mut reached = vec!["main.js"];
        let mut i = 0;
        while i < reached.len() {
            for name in imports(script(reached[i])) {
                if !reached.contains(&name) {
                    reached.push(name);
                }
            }
            i += 1;
        }
        reached.sort_unstable();
        let mut scripts: Vec<&str> = ASSETS
            .iter()
            .filter(|a| a.1 == JS_CONTENT_TYPE)
            .map(|a| a.0)
            .collect();
        scripts.sort_unstable();
        assert_eq!(reached, scripts);
    }

    #[tokio::test]
    async fn head_works_and_unknown_paths_are_not_found() {
        let (status, headers, _) = get_with(Method::HEAD, "/assets/dashboard.css").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header_str(&headers, header::CONTENT_TYPE), CSS_CONTENT_TYPE);

        for path in [
            "/assets/other.js",
            // The script before it was split into modules.
            "/assets/dashboard.js",
            "/assets/index.html",
            "/assets/",
            "/assets/main.js/x",
            "/assets/MAIN.JS",
            "/runs",
            "/runs/a/b",
        ] {
            let (status, _, _) = get_path(path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (status, _, _) = get_with(Method::POST, "/").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
}
