//! The apalis queue view for operators: apalis-board's prebuilt UI and its API over the engine's
//! step queue, served read-only on a listener of its own.
//!
//! The prebuilt UI is compiled for the site root with its API at `/api/v1`, both of which the
//! dashboard and our API already own, so it cannot share their listener; it gets its own
//! (`SWITCHBOARD_QUEUE_BOARD_ADDR`, loopback by default) and `/queue` on the main server redirects
//! there. apalis-board also accepts `PUT …/tasks` to push raw tasks, which would bypass the
//! engine's run state: every method but GET and HEAD is refused with 405. Its log stream
//! (`/api/v1/events`, which the UI also reads as its health signal) carries run changes from the
//! change feed rather than the process' logs, which hold leads' details.

use std::convert::Infallible;

use apalis_board::axum::framework::{ApiBuilder, RegisterRoute};
use apalis_board::axum::ui::ServeUI;
use apalis_board_types::{Entry, LogEntry, LogLevel, Span};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use switchboard_engine::store::changes::Change;
use switchboard_engine::store::tasks::{QUEUE, StepTask};
use switchboard_engine::{ChangeFeed, Db};
use tokio::sync::broadcast::error::RecvError;

/// The queue view: `/api/v1/…` (apalis-board's API for the step queue, and run changes as its
/// log stream) and the UI for every other path.
pub fn router(feed: ChangeFeed) -> Router {
    let api = Router::new();
    let api = match feed.db().clone() {
        Db::Sqlite(pools) => {
            let config = apalis_sqlite::Config::default().queue(QUEUE);
            // Connections of its own, read-only, opened when the view is first read.
            let readers = pools.connect_options().clone().read_only(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(2)
                .min_connections(0)
                .connect_lazy_with(readers);
            let storage = apalis_sqlite::SqliteStorage::<StepTask>::new(&pool).with_config(config);
            ApiBuilder::new(api).register(QUEUE, storage).build()
        }
        Db::Postgres(pools) => {
            let config = apalis_postgres::Config::default().queue(QUEUE);
            let storage = apalis_postgres::PostgresStorage::<StepTask>::new(pools.sqlx_pool())
                .with_config(config);
            ApiBuilder::new(api).register(QUEUE, storage).build()
        }
    };
    Router::new()
        .nest("/api/v1", api)
        .fallback_service(ServeUI::new())
        .layer(middleware::from_fn_with_state(feed, gate))
}

/// Refuses everything but reads, and answers the log stream itself (apalis-board's own handler
/// needs its tracing broadcaster, which we do not install).
async fn gate(State(feed): State<ChangeFeed>, request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "the queue view is read-only",
        )
            .into_response();
    }
    if request.uri().path() == "/api/v1/events" {
        return run_changes(&feed).into_response();
    }
    next.run(request).await
}

/// Run changes, live, as apalis-board log entries (a slow client skips what it missed).
fn run_changes(feed: &ChangeFeed) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let changes = futures::stream::unfold(feed.subscribe(), |mut live| async move {
        loop {
            match live.recv().await {
                Ok(change) => return Some((Ok(log_entry(&change)), live)),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(changes).keep_alive(KeepAlive::default())
}

fn log_entry(c: &Change) -> Event {
    let step = c.current_step.as_deref().unwrap_or("-");
    let mut message = format!("{} run {}: {} at {step}", c.business_id, c.run_id, c.status);
    if let Some(outcome) = &c.outcome {
        message.push_str(&format!(" ({outcome})"));
    }
    let entry = LogEntry {
        span: Some(Span {
            attempt: 0,
            task_id: c.run_id.clone(),
            name: step.to_owned(),
        }),
        level: if c.status == "failed" {
            LogLevel::Error
        } else {
            LogLevel::Info
        },
        timestamp: chrono::DateTime::from_timestamp_millis(c.at)
            .unwrap_or_default()
            .to_rfc3339(),
        target: "switchboard::runs".into(),
        entry: Entry {
            message: Some(message),
            entry_type: None,
        },
    };
    Event::default().json_data(entry).unwrap_or_default()
}
