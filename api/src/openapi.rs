//! The OpenAPI document of the API, generated from the handlers' `#[utoipa::path]` annotations
//! and served at `GET /api/v1/openapi.json`. A test compares it with the router, so a route
//! without documentation fails the suite.

use axum::Json;
use utoipa::OpenApi;

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "Durable workflow engine for AI outbound-calling pipelines: leads, runs and \
                       their live events, business scripts, provider webhooks."
    ),
    paths(
        routes::leads::create,
        routes::leads::show,
        routes::leads::erase,
        routes::imports::import,
        routes::imports::show,
        routes::runs::list,
        routes::runs::counts,
        routes::overview::overview,
        routes::analytics::analytics,
        routes::runs::show,
        routes::runs::cancel,
        routes::runs::retry,
        routes::runs::resume,
        routes::events::stream,
        routes::businesses::list,
        routes::businesses::show,
        routes::businesses::usage,
        routes::business_config::create,
        routes::business_config::show,
        routes::business_config::put,
        routes::business_config::patch,
        routes::business_config::versions,
        routes::business_config::version,
        routes::scripts::show,
        routes::scripts::put,
        routes::scripts::validate,
        routes::scripts::dry_run,
        routes::backtests::start,
        routes::backtests::show,
        routes::scripts::versions,
        routes::scripts::version,
        routes::scripts::reference,
        routes::personalize::personalize,
        routes::webhooks::elevenlabs,
        routes::webhooks::retell,
        routes::health,
        routes::ready,
        crate::prometheus::metrics,
        routes::queue_board,
        routes::sessions::sign_in,
        routes::sessions::current,
        routes::sessions::sign_out,
        routes::keys::create,
        routes::keys::list,
        routes::keys::revoke,
        routes::audit::list,
        routes::exports::leads,
        routes::exports::runs,
        routes::schedules::list,
        routes::schedules::pause,
        routes::do_not_call::add,
        routes::do_not_call::check,
        routes::do_not_call::list,
        routes::do_not_call::remove,
        routes::schedules::resume,
        routes::dead_letters::list,
        routes::dead_letters::show,
        routes::dead_letters::replay,
        document,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        routes::keys::NewKey,
        routes::sessions::SignIn,
        crate::imports::parse::Format,
        crate::imports::OnDuplicate,
    )),
    modifiers(&Conventions)
)]
pub struct ApiDoc;

/// What holds for every operation, added here rather than repeated on each: the two ways to
/// authenticate, required (with their `401` and `429` answers) unless an operation is marked
/// public (`security(())`); and the answers the extractors give to malformed input (`400` for a
/// malformed path or JSON, `413`, `415`, `422` for an invalid query or body).
struct Conventions;

impl utoipa::Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key, `sbk_…`: an operator's or a business'"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::access::SESSION_COOKIE,
                "A dashboard session (POST /api/v1/sessions); actions also need the \
                 X-CSRF-Token header",
            ))),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                use utoipa::openapi::path::ParameterIn;
                let params = op.parameters.as_deref().unwrap_or_default();
                let has = |place: ParameterIn| params.iter().any(|p| p.parameter_in == place);
                let mut answers = Vec::new();
                if has(ParameterIn::Path) {
                    answers.push(("400", "Malformed path parameter"));
                }
                if has(ParameterIn::Query) {
                    answers.push(("422", "Invalid query parameter"));
                }
                if op.request_body.is_some() {
                    answers.extend([
                        ("400", "Malformed JSON"),
                        ("413", "Body too large"),
                        ("415", "Body is not application/json"),
                        ("422", "Invalid body"),
                    ]);
                }
                // Any URL can hold a NUL (see `storable`).
                answers.push((
                    "422",
                    "`invalid_text`: the URL or the body holds a NUL character (`%00`, \
                     `\\u0000`), which cannot be stored",
                ));
                for (status, description) in answers {
                    op.responses
                        .responses
                        .entry(status.into())
                        .or_insert_with(|| error(description).into());
                }
                if op.security.is_some() {
                    continue; // public: marked `security(())`
                }
                op.security = Some(vec![
                    SecurityRequirement::new("api_key", Vec::<String>::new()),
                    SecurityRequirement::new("session", Vec::<String>::new()),
                ]);
                let responses = &mut op.responses.responses;
                responses
                    .entry("401".into())
                    .or_insert_with(|| error("No valid API key or session").into());
                responses
                    .entry("429".into())
                    .or_insert_with(|| error("Over the key's rate limit; see Retry-After").into());
            }
        }
    }
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "health", operation_id = "openapi", security(()),
    responses((status = 200, description = "This document", body = Object))
)]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every `(method, path)` the router in router.rs serves, read from its source.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("router.rs");
        let mut out = BTreeSet::new();
        let mut rest = source;
        while let Some(at) = rest.find(".route(") {
            let call = &rest[at + ".route(".len()..];
            let mut depth = 1;
            let end = call
                .char_indices()
                .find_map(|(i, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    (depth == 0).then_some(i)
                })
                .expect("balanced route call");
            let call = &call[..end];
            let path = call.split('"').nth(1).expect("a path literal").to_owned();
            for method in ["get", "post", "put", "delete", "patch"] {
                let starts = [format!("{method}(routes::"), format!("{method}(crate::")];
                if starts.iter().any(|s| call.contains(s.as_str())) {
                    out.insert((method.to_owned(), path.clone()));
                }
            }
            rest = &rest[at + 1..];
        }
        out
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                out.insert((method.clone(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let routed = routed();
        let documented = documented();
        assert!(
            routed.len() >= 20,
            "the route scan found too little: {routed:?}"
        );
        let missing: Vec<_> = routed.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes missing from the OpenAPI document: {missing:?}"
        );
        let stale: Vec<_> = documented.difference(&routed).collect();
        assert!(
            stale.is_empty(),
            "documented routes that do not exist: {stale:?}"
        );
    }

    /// Whether `schema` says what it holds: a reference, fields, typed items, or a scalar.
    fn described(schema: &serde_json::Value) -> bool {
        if schema.get("$ref").is_some() || schema.get("properties").is_some() {
            return true;
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            if let Some(parts) = schema[key].as_array() {
                return parts.iter().all(|p| p["type"] == "null" || described(p));
            }
        }
        match &schema["type"] {
            serde_json::Value::String(t) if t == "array" => described(&schema["items"]),
            serde_json::Value::String(t) => {
                t != "object" || schema.get("additionalProperties").is_some_and(described)
            }
            _ => false,
        }
    }

    #[test]
    fn every_json_body_and_answer_has_a_schema_not_a_bare_object() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut bare = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap();
                if id == "openapi" {
                    continue; // the document itself: an OpenAPI 3.1 document
                }
                let mut bodies = vec![("request".to_owned(), &op["requestBody"])];
                for (status, response) in op["responses"].as_object().unwrap() {
                    bodies.push((status.clone(), response));
                }
                for (what, body) in bodies {
                    let schema = &body["content"]["application/json"]["schema"];
                    if !schema.is_null() && !described(schema) {
                        bare.push(format!("{method} {path} {what}: {schema}"));
                    }
                }
            }
        }
        assert!(
            bare.is_empty(),
            "bodies without a schema:\n{}",
            bare.join("\n")
        );
    }

    /// Every `$ref` in `value`, wherever it sits.
    fn refs<'a>(value: &'a serde_json::Value, out: &mut BTreeSet<&'a str>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(to)) = map.get("$ref") {
                    out.insert(to);
                }
                map.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_names_a_schema_the_document_holds() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut all = BTreeSet::new();
        refs(&doc, &mut all);
        assert!(
            all.len() >= 20,
            "the scan found too few references: {all:?}"
        );
        let dangling: Vec<_> = all
            .into_iter()
            .filter(|to| {
                let name = to.strip_prefix("#/components/schemas/").unwrap_or(to);
                doc["components"]["schemas"].get(name).is_none()
            })
            .collect();
        assert!(
            dangling.is_empty(),
            "references to schemas the document lacks: {dangling:?}"
        );
    }

    #[test]
    fn operations_have_unique_ids_and_errors_use_the_one_shape() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut ids = BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(ids.insert(id.clone()), "duplicate operationId {id}");
                for (status, response) in op["responses"].as_object().unwrap() {
                    if status.starts_with('4') || status.starts_with('5') {
                        let schema = &response["content"]["application/json"]["schema"]["$ref"];
                        assert_eq!(schema, "#/components/schemas/ErrorBody", "{id} {status}");
                    }
                }
            }
        }
    }
}
