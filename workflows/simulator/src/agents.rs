//! The simulated ElevenLabs agents API (create, get, update, delete, list) and OpenAI's model
//! list, so that `agents sync` and the circuit breakers' probes run against the simulator as
//! against the real APIs.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Simulator;
use super::voice::el_error;
use switchboard_workflows::providers::elevenlabs::{
    Agent, AgentPage, AgentSpec, AgentSummary, CreatedAgent,
};

/// `POST /v1/convai/agents/create`.
pub(super) async fn create(State(sim): State<Simulator>, Json(spec): Json<AgentSpec>) -> Response {
    let agent_id = format!("agent_sim_{}", uuid::Uuid::now_v7().simple());
    let mut state = sim.state();
    state.agents.insert(
        agent_id.clone(),
        Agent {
            agent_id: agent_id.clone(),
            spec,
        },
    );
    Json(CreatedAgent { agent_id }).into_response()
}

fn not_found(id: &str) -> Response {
    el_error(
        StatusCode::NOT_FOUND,
        "agent_not_found",
        format!("Agent {id} not found"),
    )
}

/// `GET /v1/convai/agents/{id}`.
pub(super) async fn get(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    match sim.state().agents.get(&id) {
        Some(agent) => Json(agent.clone()).into_response(),
        None => not_found(&id),
    }
}

/// `PATCH /v1/convai/agents/{id}`: the fields sent replace the stored ones, object by object.
pub(super) async fn update(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    Json(patch): Json<Value>,
) -> Response {
    let mut state = sim.state();
    let Some(agent) = state.agents.get_mut(&id) else {
        return not_found(&id);
    };
    let mut merged = serde_json::to_value(&agent.spec).unwrap_or(Value::Null);
    merge(&mut merged, patch);
    match serde_json::from_value::<AgentSpec>(merged) {
        Ok(spec) => {
            agent.spec = spec;
            Json(agent.clone()).into_response()
        }
        Err(e) => super::voice::el_validation(&["body"], e.to_string()),
    }
}

fn merge(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Object(into), Value::Object(patch)) => {
            for (k, v) in patch {
                merge(into.entry(k).or_insert(Value::Null), v);
            }
        }
        (into, patch) => *into = patch,
    }
}

/// `DELETE /v1/convai/agents/{id}`.
pub(super) async fn delete(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    match sim.state().agents.remove(&id) {
        Some(_) => Json(json!({})).into_response(),
        None => not_found(&id),
    }
}

#[derive(Deserialize)]
pub(super) struct Page {
    page_size: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/convai/agents?page_size&cursor`: by id, `page_size` (default 30, at most 100) a
/// page; the cursor is the last id of the previous page.
pub(super) async fn list(State(sim): State<Simulator>, Query(page): Query<Page>) -> Response {
    let size = page.page_size.unwrap_or(30).clamp(1, 100);
    let state = sim.state();
    let mut after = state
        .agents
        .range::<String, _>((
            page.cursor
                .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
            std::ops::Bound::Unbounded,
        ))
        .map(|(_, a)| AgentSummary {
            agent_id: a.agent_id.clone(),
            name: a.spec.name.clone(),
            tags: a.spec.tags.clone(),
        });
    let agents: Vec<_> = after.by_ref().take(size).collect();
    let has_more = after.next().is_some();
    Json(AgentPage {
        next_cursor: has_more
            .then(|| agents.last().map(|a| a.agent_id.clone()))
            .flatten(),
        agents,
        has_more,
    })
    .into_response()
}

/// `GET /v1/models` (OpenAI): the models the simulated analyses answer as.
pub(super) async fn models() -> Response {
    let model = |id: &str| json!({"id": id, "object": "model", "created": 1_721_172_741, "owned_by": "system"});
    Json(json!({"object": "list", "data": [model("gpt-4o-mini"), model("gpt-4o")]})).into_response()
}
