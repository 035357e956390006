//! Who is calling and which businesses they may reach. Handlers take a resolved [`Caller`] and
//! never read tenancy from the request themselves.
//!
//! Until API keys exist every caller is the operator, who may reach every business; keys will
//! resolve to [`Caller::Business`] here without any handler changing.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The resolved caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// May reach every business.
    Operator,
    /// May reach only this business.
    Business(String),
}

impl Caller {
    /// Whether the caller may read or change this business' data.
    pub fn can_access(&self, business_id: &str) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Business(own) => own == business_id,
        }
    }

    /// The business a listing is confined to: the caller's own, or the one asked for.
    pub fn scope(&self, requested: Option<String>) -> Option<String> {
        match self {
            Caller::Operator => requested,
            Caller::Business(own) => Some(own.clone()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller::Operator)
    }
}
