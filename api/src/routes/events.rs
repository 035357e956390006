//! `GET /api/v1/events`: server-sent events of run changes (`event: run`, the event id is the
//! change's position), optionally for one business or one run. Every process serves every change,
//! whichever process's worker made it. A client that reconnects with `Last-Event-ID` (or
//! `?last_event_id=`) gets the changes it missed first; if they are older than the feed keeps, it
//! gets `event: reset` and should reload. The first event, `ready` (`{}`), says the stream is live. A
//! stream ends when its key is revoked or its session ends (checked every
//! [`access::CREDENTIALS_RECHECK`]).

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use switchboard_engine::ChangeFeed;
use switchboard_engine::store::changes::{self, Change};
use tokio::sync::{broadcast, mpsc};

use crate::access;
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::state::AppState;
use crate::tenant::Caller;

/// Filters of the stream.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only this business' runs.
    pub business: Option<String>,
    /// Only this run.
    pub run: Option<String>,
    /// Resume after this event id (the `Last-Event-ID` header wins).
    pub last_event_id: Option<i64>,
}

impl EventsQuery {
    fn wants(&self, c: &Change) -> bool {
        self.business.as_ref().is_none_or(|b| *b == c.business_id)
            && self.run.as_ref().is_none_or(|r| *r == c.run_id)
    }
}

/// Streams run changes.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "runs", operation_id = "run_events",
    params(("business" = Option<String>, Query, description = "Business id"), ("run" = Option<String>, Query, description = "Run id"), ("last_event_id" = Option<i64>, Query, description = "Resume after this event id"), ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (wins over the query)")),
    responses((status = 200, description = "Server-sent events: `ready`, then `run` for every change (`reset` when the missed changes are no longer kept)", content_type = "text/event-stream", body = String), (status = 400, description = "Malformed Last-Event-ID", body = ErrorBody), (status = 404, description = "`run` names no run (or not the caller's)", body = ErrorBody))
)]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    signed_in: Option<axum::Extension<access::SignedIn>>,
    headers: HeaderMap,
    Query(mut query): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    query.business = caller.scope(query.business)?;
    if let Some(run) = &query.run {
        crate::tenant::run(&state, &caller, run).await?;
    }
    let header = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::BadRequest {
                    code: "invalid_last_event_id",
                    message: "Last-Event-ID must be an event id (an integer)".into(),
                })
        })
        .transpose()?;
    let resume = header.or(query.last_event_id);
    let feed = state.feed.clone();
    // Subscribe before reading the position: nothing falls between replay and live.
    let live = feed.subscribe();
    let (tx, mut rx) = mpsc::channel::<Event>(256);
    // With a session, the session is what must stay valid.
    let session = signed_in.map(|axum::Extension(s)| s.token);
    let credentials = access::until_credentials_end(state.engine.db().clone(), caller, session);
    tokio::spawn(async move {
        let closed = tx.clone();
        tokio::select! {
            pumped = pump(feed, live, query, resume, tx) => {
                if let Err(e) = pumped {
                    tracing::debug!(error = %e, "event stream ended");
                }
            }
            // The client left (noticed even while no change matches its filter).
            _ = closed.closed() => {}
            _ = credentials => tracing::debug!("event stream ended: its key or session did"),
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|e| e.map(Ok)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn run_event(c: &Change) -> Event {
    Event::default()
        .event("run")
        .id(c.id.to_string())
        .json_data(c)
        .unwrap_or_default()
}

/// Sends the missed changes, then live ones, until the client goes away.
async fn pump(
    feed: ChangeFeed,
    mut live: broadcast::Receiver<Change>,
    query: EventsQuery,
    resume: Option<i64>,
    tx: mpsc::Sender<Event>,
) -> anyhow::Result<()> {
    let mut sent = match resume {
        Some(id) => {
            let (first, _) = changes::bounds(feed.db()).await?;
            if first.is_some_and(|f| f > id + 1) {
                let reset = json!({"reason": "the changes after that id are no longer kept"});
                tx.send(Event::default().event("reset").data(reset.to_string()))
                    .await?;
                feed.position()
            } else {
                id
            }
        }
        None => feed.position(),
    };
    // No position: the feed's is every business' (its pace would tell one tenant another's).
    tx.send(Event::default().event("ready").data("{}")).await?;
    sent = replay(&feed, &query, sent, &tx).await?;
    loop {
        match live.recv().await {
            Ok(change) if change.id > sent => {
                sent = change.id;
                if query.wants(&change) {
                    tx.send(run_event(&change)).await?;
                }
            }
            Ok(_) => {}
            // Too slow a client: catch up from the table.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                sent = replay(&feed, &query, sent, &tx).await?;
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

/// Sends the changes after `from` up to the feed's position; returns the last id covered.
async fn replay(
    feed: &ChangeFeed,
    query: &EventsQuery,
    mut from: i64,
    tx: &mpsc::Sender<Event>,
) -> anyhow::Result<i64> {
    let until = feed.position();
    while from < until {
        let batch = changes::after(feed.db(), from, 500).await?;
        if batch.is_empty() {
            break;
        }
        for change in batch.into_iter().take_while(|c| c.id <= until) {
            from = change.id;
            if query.wants(&change) {
                tx.send(run_event(&change)).await?;
            }
        }
    }
    Ok(until.max(from))
}
