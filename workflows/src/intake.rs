//! Lead intake, below the HTTP layer: a submitted lead is checked field by field against its
//! business into a [`CheckedLead`], then stored with its `lead_call` run in one transaction,
//! exactly once per idempotency key. `POST /api/v1/leads` comes in through [`accept_lead`]; the
//! bulk import checks and starts its rows with [`check`] and [`start`].

use switchboard_engine::RunStatus;
use switchboard_engine::ids::{new_id, now_ms};
use switchboard_engine::store::Tx;
use switchboard_engine::{Engine, EngineError, RunId};

use crate::business::{Business, timezone};
use crate::lead::{CheckedLead, Email, Lead, LeadName, NewLead};
use crate::lead_call;
use crate::phone::Phone;
use crate::store::{self, Idempotency};

/// How long an `Idempotency-Key` is remembered: a day, as payment APIs do.
const IDEMPOTENCY_KEY_TTL_MS: i64 = 24 * 3600 * 1000;

/// Why a lead was not taken in.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// A field is not valid: `code` (`invalid_name`, `invalid_phone`, …) and the field it names.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        field: &'static str,
        message: String,
    },
    /// No such business.
    #[error("business {0:?} does not exist")]
    UnknownBusiness(String),
    /// The number is on the business' do-not-call list.
    #[error("the number is on {0}'s do-not-call list: it is never called")]
    DoNotCall(String),
    /// The idempotency key came with a different request in the last day (nothing created).
    #[error(
        "this Idempotency-Key came with a different request in the last 24 hours: send the \
         same request to get its answer again, or a new key for a new lead"
    )]
    KeyReused,
    #[error(transparent)]
    Store(#[from] EngineError),
}

fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> IntakeError {
    IntakeError::Invalid {
        code,
        field,
        message: message.into(),
    }
}

/// Checks a lead of `business`: name, E.164 phone, email, source, custom fields, consent and
/// timezone; the error names the field.
pub fn check(business: &Business, new: NewLead) -> Result<CheckedLead, IntakeError> {
    let fingerprint = new.fingerprint();
    let name = LeadName::parse(&new.name).map_err(|m| invalid("invalid_name", "name", m))?;
    let phone =
        Phone::parse(&new.phone).map_err(|e| invalid("invalid_phone", "phone", e.to_string()))?;
    let email = new
        .email
        .as_deref()
        .map(Email::parse)
        .transpose()
        .map_err(|m| invalid("invalid_email", "email", m))?;
    if new.source.as_ref().is_some_and(|s| s.len() > 200) {
        return Err(invalid(
            "invalid_source",
            "source",
            "source must be at most 200 characters",
        ));
    }
    business
        .check_custom_fields(&new.custom_fields)
        .map_err(|m| invalid("invalid_custom_field", "custom_fields", m))?;
    if let Some(consent) = &new.consent {
        consent
            .check(chrono::Utc::now())
            .map_err(|(field, m)| invalid("invalid_consent", field, m))?;
    }
    let zone = new.timezone.as_deref().map(str::trim);
    if let Some(zone) = zone {
        timezone(zone).map_err(|m| invalid("invalid_timezone", "timezone", m))?;
    }
    Ok(CheckedLead {
        business: new.business,
        name,
        phone,
        email,
        source: new.source,
        custom_fields: new.custom_fields,
        consent: new.consent,
        timezone: zone.map(str::to_owned),
        sim: new.sim,
        fingerprint,
    })
}

/// Stores a checked lead and starts its run in `tx` (the caller commits, then notifies the
/// engine); `idempotency` is its idempotency key (unique in the business) and the fingerprint
/// of the request it came with.
pub async fn start(
    engine: &Engine,
    tx: &mut Tx,
    checked: &CheckedLead,
    idempotency: Option<Idempotency<'_>>,
) -> Result<Lead, IntakeError> {
    let lead_id = new_id();
    let run_id = lead_call::start_run(engine, tx, &checked.business, &lead_id).await?;
    let lead = Lead {
        id: lead_id,
        business_id: checked.business.clone(),
        name: checked.name.as_str().to_owned(),
        phone: checked.phone.clone(),
        email: checked.email.as_ref().map(|e| e.as_str().to_owned()),
        source: checked.source.clone(),
        custom_fields: checked.custom_fields.clone(),
        consent: checked.consent.clone(),
        timezone: checked.timezone.clone(),
        run_id: run_id.0.clone(),
        created_at: now_ms(),
    };
    store::insert_lead(tx, &lead, idempotency).await?;
    if let Some(steer) = &checked.sim {
        store::sim_steering::insert(tx, &lead.id, steer).await?;
    }
    Ok(lead)
}

/// A lead taken in: the stored lead, its run's status, and whether it was stored by an earlier
/// request with the same idempotency key.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub lead: Lead,
    pub run_status: RunStatus,
    pub replayed: bool,
}

/// Takes in a submitted lead: checks it, refuses a number on the do-not-call list, stores it
/// and starts its run, once per idempotency `key` (the same request again gets the same lead).
pub async fn accept_lead(
    engine: &Engine,
    new: NewLead,
    key: Option<&str>,
) -> Result<Accepted, IntakeError> {
    let db = engine.db();
    let business = store::business(db, &new.business)
        .await?
        .ok_or_else(|| IntakeError::UnknownBusiness(new.business.clone()))?;
    let checked = check(&business, new)?;
    if store::do_not_call::listed(db, &business.id, checked.phone.as_str()).await? {
        return Err(IntakeError::DoNotCall(business.id));
    }
    let mut tx = db.begin().await?;
    if let Some(key) = key
        && let Some(existing) = store::lead_by_idempotency_key(&mut tx, &business.id, key).await?
    {
        // A key older than a day means a new request: free it (the one extra write happens
        // only then, not on every keyed request).
        if existing.0.created_at >= now_ms() - IDEMPOTENCY_KEY_TTL_MS {
            tx.rollback().await?;
            return replay(engine, existing, &checked.fingerprint).await;
        }
        store::release_idempotency_key(&mut tx, &existing.0.id).await?;
    }
    let idempotency = key.map(|key| Idempotency {
        key,
        fingerprint: Some(&checked.fingerprint),
    });
    match start(engine, &mut tx, &checked, idempotency).await {
        Ok(lead) => {
            tx.commit().await?;
            engine.notify_changed();
            Ok(Accepted {
                lead,
                run_status: RunStatus::Queued,
                replayed: false,
            })
        }
        Err(e) => {
            // A concurrent request with the same key won the race: answer with its lead.
            tx.rollback().await?;
            if let Some(key) = key {
                let mut tx = db.begin().await?;
                let existing = store::lead_by_idempotency_key(&mut tx, &business.id, key).await?;
                tx.rollback().await?;
                if let Some(existing) = existing {
                    return replay(engine, existing, &checked.fingerprint).await;
                }
            }
            Err(e)
        }
    }
}

/// The answer to a request whose key a lead was created with: that lead again if the request is
/// the same (`fingerprint`), else [`IntakeError::KeyReused`].
async fn replay(
    engine: &Engine,
    (lead, used_with): (Lead, Option<String>),
    fingerprint: &str,
) -> Result<Accepted, IntakeError> {
    if used_with.is_some_and(|f| f != fingerprint) {
        return Err(IntakeError::KeyReused);
    }
    let run =
        switchboard_engine::store::runs::find(engine.db(), &RunId(lead.run_id.clone())).await?;
    Ok(Accepted {
        run_status: run.map_or(RunStatus::Queued, |r| r.status),
        lead,
        replayed: true,
    })
}
