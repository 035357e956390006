-- Bulk lead imports (POST /api/v1/leads/import): one row per distinct upload (business, options
-- and file), with its progress and, once done, every rejected row's line and reason.
CREATE TABLE lead_imports (
    id           TEXT PRIMARY KEY,                 -- imp_ + a hash of business, options and file
    business_id  TEXT NOT NULL REFERENCES businesses (id),
    format       TEXT NOT NULL,                    -- csv | jsonl
    on_duplicate TEXT NOT NULL,                    -- skip | update
    status       TEXT NOT NULL,                    -- processing | done | failed
    total_rows   BIGINT NOT NULL,
    processed    BIGINT NOT NULL,
    created      BIGINT NOT NULL,
    updated      BIGINT NOT NULL,
    skipped      BIGINT NOT NULL,
    rejected     BIGINT NOT NULL,
    rejections   TEXT NOT NULL,                    -- JSON [{line, reason}]
    error        TEXT,
    created_at   BIGINT NOT NULL,                  -- unix ms
    updated_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX lead_imports_business ON lead_imports (business_id, created_at);
