//! Who is calling and which businesses they may reach. Handlers take a resolved [`Caller`]
//! (put in place by `access::authenticate`) and never read tenancy from the request themselves;
//! they look a business or a run up through `business` and `run`.
//! Another business' data answers 404, exactly as data that does not exist.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use switchboard_engine::RunId;
use switchboard_engine::store::runs::{self, RunRow};
use switchboard_workflows::business::Business;
use switchboard_workflows::store;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::keys::ApiKey;

/// The resolved caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The key it came with (the actor in the audit log, the bucket of its rate limit).
    pub key_id: String,
    /// The business it may reach; `None`: an operator, who may reach every business.
    pub business: Option<String>,
}

impl Caller {
    /// The caller a key makes.
    pub fn of(key: &ApiKey) -> Caller {
        Caller {
            key_id: key.id.clone(),
            business: key.business_id.clone(),
        }
    }

    /// Whether the caller may read or change this business' data.
    pub fn can_access(&self, business_id: &str) -> bool {
        self.business
            .as_deref()
            .is_none_or(|own| own == business_id)
    }

    /// The business a listing is confined to: the one asked for (404 if the caller may not
    /// reach it), or for a business' key its own.
    pub fn scope(&self, requested: Option<String>) -> Result<Option<String>, ApiError> {
        match (&self.business, requested) {
            (None, requested) => Ok(requested),
            (Some(own), Some(asked)) if *own != asked => {
                Err(ApiError::NotFound(format!("business {asked} not found")))
            }
            (Some(own), _) => Ok(Some(own.clone())),
        }
    }

    /// The rate-limit bucket it draws on: its business' (however many keys the business made),
    /// or for an operator its key's.
    pub fn rate_bucket(&self) -> String {
        match &self.business {
            Some(business) => format!("business:{business}"),
            None => format!("key:{}", self.key_id),
        }
    }

    /// `403 operator_only` unless the caller is an operator.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self.business {
            None => Ok(()),
            Some(_) => Err(ApiError::Forbidden {
                code: "operator_only",
                message: "this needs an operator key".into(),
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "a handler that takes a Caller is mounted outside authentication"
            ))
        })
    }
}

/// The business `id`, if the caller may reach it; 404 otherwise.
pub(crate) async fn business(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Business> {
    let found = match caller.can_access(id) {
        true => store::business(state.engine.db(), id).await?,
        false => None,
    };
    found.ok_or_else(|| ApiError::NotFound(format!("business {id:?} does not exist")))
}

/// Run `id`, if the caller may see it; 404 otherwise (also what the event stream's `run` filter
/// uses).
pub(crate) async fn run(state: &AppState, caller: &Caller, id: &str) -> ApiResult<RunRow> {
    let run = runs::find(state.engine.db(), &RunId(id.to_owned())).await?;
    match run {
        Some(run) if caller.can_access(&run.business_id) => Ok(run),
        _ => Err(ApiError::NotFound(format!("run {id} not found"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn business(id: &str) -> Caller {
        Caller {
            key_id: "key_1".into(),
            business: Some(id.into()),
        }
    }

    #[test]
    fn a_business_reaches_only_its_own_data() {
        let b = business("acme");
        assert!(b.can_access("acme"));
        assert!(!b.can_access("globex"));
        assert_eq!(b.scope(None).unwrap(), Some("acme".into()));
        assert_eq!(b.scope(Some("acme".into())).unwrap(), Some("acme".into()));
        assert!(matches!(
            b.scope(Some("globex".into())),
            Err(ApiError::NotFound(_))
        ));
        assert!(b.require_operator().is_err());
    }

    #[test]
    fn an_operator_reaches_every_business() {
        let op = Caller {
            key_id: "key_op".into(),
            business: None,
        };
        assert!(op.can_access("globex"));
        assert_eq!(op.scope(None).unwrap(), None);
        assert_eq!(op.scope(Some("x".into())).unwrap(), Some("x".into()));
        assert!(op.require_operator().is_ok());
    }
}
