//! Times as the API writes and reads them: RFC 3339 (milliseconds, UTC), from and to the unix
//! milliseconds the database stores.

use serde::Serializer;

use crate::error::{ApiError, ApiResult};

/// An RFC 3339 time parameter as unix milliseconds; `422 invalid_time` naming `field` otherwise.
pub(crate) fn parse_time(field: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|_| {
                    ApiError::invalid(
                        "invalid_time",
                        field,
                        format!("{field} must be an RFC 3339 time, e.g. 2026-11-21T00:00:00Z"),
                    )
                })
        })
        .transpose()
}

/// Unix milliseconds as RFC 3339.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Serializes unix milliseconds as RFC 3339 (`#[serde(serialize_with = "…")]`).
pub fn serialize_ms<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

/// [`serialize_ms`] for a time that may be absent (`null`).
pub fn serialize_maybe_ms<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => serialize_ms(ms, s),
        None => s.serialize_none(),
    }
}
