//! `sb_sessions`: dashboard sessions. The browser holds the token in an HttpOnly cookie; only
//! its hash is stored. A session lasts [`SESSION_LENGTH`] and ends with its key.

use std::time::Duration;

use sqlx::FromRow;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q, Tx};

use super::keys::{self, ApiKey};

type Result<T> = std::result::Result<T, switchboard_engine::EngineError>;

/// How long a dashboard sign-in lasts.
pub const SESSION_LENGTH: Duration = Duration::from_secs(12 * 3600);

/// A session's token (for the cookie) and CSRF token (for action headers).
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
}

/// A live session with its key.
#[derive(FromRow)]
pub struct Session {
    pub csrf_token: String,
    #[sqlx(flatten)]
    pub key: ApiKey,
}

/// Starts a session for key `key_id`.
pub async fn start(db: &Db, key_id: &str) -> Result<NewSession> {
    let s = NewSession {
        token: hex::encode(rand::random::<[u8; 32]>()),
        csrf_token: hex::encode(rand::random::<[u8; 32]>()),
    };
    let now = now_ms();
    let mut tx = db.begin().await?;
    // Sessions past their time go as new ones start.
    tx.execute(Q::new("DELETE FROM sb_sessions WHERE expires_at < $1").bind(now))
        .await?;
    tx.execute(
        Q::new(
            "INSERT INTO sb_sessions (token_hash, key_id, csrf_token, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(keys::hash(&s.token))
        .bind(key_id)
        .bind(s.csrf_token.as_str())
        .bind(now + SESSION_LENGTH.as_millis() as i64),
    )
    .await?;
    tx.commit().await?;
    Ok(s)
}

/// The live session of `token` whose key is still usable.
pub async fn find_live(db: &Db, token: &str) -> Result<Option<Session>> {
    db.fetch_optional(
        Q::new(
            "SELECT s.csrf_token, k.id, k.business_id, k.name, k.prefix, k.created_at, k.revoked_at \
             FROM sb_sessions s JOIN sb_api_keys k ON k.id = s.key_id \
             WHERE s.token_hash = $1 AND s.expires_at >= $2 AND k.revoked_at IS NULL",
        )
        .bind(keys::hash(token))
        .bind(now_ms()),
    )
    .await
}

/// Ends the session of `token`.
pub async fn end(db: &Db, token: &str) -> Result<()> {
    db.execute(Q::new("DELETE FROM sb_sessions WHERE token_hash = $1").bind(keys::hash(token)))
        .await?;
    Ok(())
}

/// Ends every session of key `key_id`.
pub async fn end_all_of_key(tx: &mut Tx, key_id: &str) -> Result<()> {
    tx.execute(Q::new("DELETE FROM sb_sessions WHERE key_id = $1").bind(key_id))
        .await?;
    Ok(())
}
