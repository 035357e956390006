//! `lead_imports`: each distinct upload, its progress and its report.

use sqlx::FromRow;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q};

/// A rejected row.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Rejection {
    /// The file's line (1 is the first; a CSV header is line 1).
    pub line: u64,
    pub reason: String,
}

/// Tallies as the import goes.
#[derive(Debug, Default)]
pub struct Tally {
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub rejections: Vec<Rejection>,
}

type Result<T> = std::result::Result<T, switchboard_engine::EngineError>;

/// A stored import.
#[derive(Clone, Debug, FromRow)]
pub struct Import {
    pub id: String,
    pub business_id: String,
    pub format: String,
    pub on_duplicate: String,
    pub status: String,
    pub total_rows: i64,
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub rejected: i64,
    pub rejections: String,
    pub error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "id, business_id, format, on_duplicate, status, total_rows, processed, \
     created, updated, skipped, rejected, rejections, error, created_at, finished_at";

/// Records a new import as `processing`; false if one with this id exists (the same upload).
pub async fn insert(
    db: &Db,
    id: &str,
    business_id: &str,
    format: &str,
    on_duplicate: &str,
    total_rows: i64,
) -> Result<bool> {
    let now = now_ms();
    let inserted = db
        .execute(
            Q::new(
                "INSERT INTO lead_imports (id, business_id, format, on_duplicate, status, \
                 total_rows, processed, created, updated, skipped, rejected, rejections, \
                 created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'processing', $5, 0, 0, 0, 0, 0, '[]', $6, $6) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(business_id)
            .bind(format)
            .bind(on_duplicate)
            .bind(total_rows)
            .bind(now),
        )
        .await?;
    Ok(inserted == 1)
}

/// Records how far the import got.
pub async fn progress(db: &Db, id: &str, t: &Tally) -> Result<()> {
    db.execute(
        Q::new(
            "UPDATE lead_imports SET processed = $1, created = $2, updated = $3, skipped = $4, \
             rejected = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(t.processed)
        .bind(t.created)
        .bind(t.updated)
        .bind(t.skipped)
        .bind(t.rejections.len() as i64)
        .bind(now_ms())
        .bind(id),
    )
    .await?;
    Ok(())
}

/// Records the end: `done` with the report, or `failed` with `error`.
pub async fn finish(db: &Db, id: &str, t: &Tally, error: Option<&str>) -> Result<()> {
    progress(db, id, t).await?;
    let now = now_ms();
    db.execute(
        Q::new(
            "UPDATE lead_imports SET status = $1, rejections = $2, error = $3, finished_at = $4, \
             updated_at = $4 WHERE id = $5",
        )
        .bind(if error.is_some() { "failed" } else { "done" })
        .bind(serde_json::to_string(&t.rejections)?)
        .bind(error)
        .bind(now)
        .bind(id),
    )
    .await?;
    Ok(())
}

/// Takes over import `id` if it is still `processing` but made no progress since `before` (unix
/// ms): its process died. True for the one caller that takes it over.
pub async fn take_over_stalled(db: &Db, id: &str, before: i64) -> Result<bool> {
    let taken = db
        .execute(
            Q::new(
                "UPDATE lead_imports SET updated_at = $1 \
                 WHERE id = $2 AND status = 'processing' AND updated_at < $3",
            )
            .bind(now_ms())
            .bind(id)
            .bind(before),
        )
        .await?;
    Ok(taken == 1)
}

/// The import `id`.
pub async fn find(db: &Db, id: &str) -> Result<Option<Import>> {
    db.fetch_optional(Q::new(format!("SELECT {COLUMNS} FROM lead_imports WHERE id = $1")).bind(id))
        .await
}
