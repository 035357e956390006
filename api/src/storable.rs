//! The one character neither database stores, refused once at the edge: NUL (U+0000).
//!
//! PostgreSQL refuses it in `text` and `jsonb` (an error deep in a transaction), SQLite stores it
//! and some of its string functions stop at it. So a URL whose path or query holds `%00`, a JSON
//! body holding `\u0000` (the only way JSON can write a NUL) and an imported row holding one are
//! refused as `422 invalid_text`, the same on both backends. Other control characters are text
//! like any other: both databases store them.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use crate::error::ApiError;

/// The refusal, naming where the NUL is (`url`, or a field of the body such as `name`).
pub fn refusal(field: &str) -> ApiError {
    ApiError::invalid("invalid_text", field, why(field))
}

/// Why `field` is refused, for people (an error's message, an import row's rejection).
pub fn why(field: &str) -> String {
    format!("{field} holds a NUL character (U+0000), which cannot be stored")
}

/// Middleware: refuses a request whose path or query holds a percent-encoded NUL.
pub async fn refuse_nul_in_url(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let in_url = uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00"));
    if in_url {
        return axum::response::IntoResponse::into_response(refusal("url"));
    }
    next.run(request).await
}

/// Refuses a JSON text that holds a NUL, naming the field that does when the text parses.
pub fn check_json(json: &[u8]) -> Result<(), ApiError> {
    if !json_holds_nul(json) {
        return Ok(());
    }
    let field = serde_json::from_slice::<Value>(json)
        .ok()
        .and_then(|v| nul_path(&v))
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| "body".to_owned());
    Err(refusal(&field))
}

/// Whether a JSON text holds a NUL. An escape starts at a backslash that ends an odd run of
/// backslashes (each pair before it is one escaped backslash), and raw control characters are not
/// JSON, so `\u0000` there is the only NUL there can be.
pub fn json_holds_nul(json: &[u8]) -> bool {
    let mut backslashes = 0usize;
    for (i, &b) in json.iter().enumerate() {
        if b == b'\\' {
            backslashes += 1;
            continue;
        }
        if b == b'u' && backslashes % 2 == 1 && json[i + 1..].starts_with(b"0000") {
            return true;
        }
        backslashes = 0;
    }
    false
}

/// Where in `value` a NUL is, as `field.sub[2]` (empty for the value itself); `None` without one.
pub fn nul_path(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item).map(|rest| format!("[{i}]{}", dotted(&rest)))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(key.replace('\0', "\\u0000"));
            }
            nul_path(item).map(|rest| format!("{key}{}", dotted(&rest)))
        }),
        _ => None,
    }
}

/// `rest` joined after a parent: `.x` or `[0]`.
fn dotted(rest: &str) -> String {
    if rest.is_empty() || rest.starts_with('[') {
        rest.to_owned()
    } else {
        format!(".{rest}")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_the_escape_but_not_an_escaped_backslash_before_u0000() {
        assert!(json_holds_nul(br#"{"name":"Ada\u0000"}"#));
        assert!(json_holds_nul(br#"{"name":"Ada\\\u0000"}"#));
        assert!(!json_holds_nul(br#"{"name":"Ada\\u0000"}"#));
        assert!(!json_holds_nul(br#"{"name":"\u0001 \u00e9"}"#));
    }

    #[test]
    fn names_the_field_holding_it() {
        let body = json!({"name": "Ada", "custom_fields": {"notes": ["ok", "a\0b"]}});
        assert_eq!(nul_path(&body).as_deref(), Some("custom_fields.notes[1]"));
        let text = serde_json::to_vec(&body).unwrap();
        let ApiError::Invalid { code, details, .. } = check_json(&text).unwrap_err() else {
            panic!("not a 422")
        };
        assert_eq!(code, "invalid_text");
        assert_eq!(details, json!({"field": "custom_fields.notes[1]"}));
    }

    proptest! {
        /// The byte scan agrees with parsing: a JSON text holds a NUL exactly when a parsed
        /// string (or key) does.
        #[test]
        fn the_scan_agrees_with_parsing(
            strings in prop::collection::vec("[a\\\\u0\\x00\"]{0,10}", 0..6),
        ) {
            let value: Value = strings
                .iter()
                .map(|s| (s.clone(), Value::String(s.chars().rev().collect())))
                .collect::<serde_json::Map<_, _>>()
                .into();
            let text = serde_json::to_vec(&value).unwrap();
            prop_assert_eq!(json_holds_nul(&text), nul_path(&value).is_some());
        }
    }
}
