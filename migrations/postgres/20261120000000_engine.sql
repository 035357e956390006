-- Engine tables: runs, step attempts, waits and received external events.
-- Timestamps are Unix milliseconds; JSON is stored as text.
CREATE TABLE sb_runs (
    id            TEXT PRIMARY KEY,          -- UUIDv7: ordering by id is ordering by creation
    workflow      TEXT NOT NULL,
    business_id   TEXT NOT NULL,
    subject_id    TEXT NOT NULL,             -- what the run is about (the lead id for lead_call)
    status        TEXT NOT NULL,             -- queued | running | waiting | succeeded | failed | cancelled
    current_step  TEXT,
    current_row   TEXT,                      -- sb_steps.id of the current step attempt
    seq           BIGINT NOT NULL DEFAULT 0,-- bumped by every transition; tasks carry the seq they expect
    outcome       TEXT,
    error         TEXT,
    wait_kind     TEXT,
    wait_key      TEXT,
    wait_until    BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX sb_runs_business ON sb_runs (business_id, id);
CREATE INDEX sb_runs_status ON sb_runs (status, id);
CREATE INDEX sb_runs_subject ON sb_runs (subject_id);

CREATE TABLE sb_steps (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES sb_runs (id),
    name        TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    status      TEXT NOT NULL,               -- queued | waiting | running | succeeded | failed | cancelled
    input       TEXT NOT NULL,
    output      TEXT,
    error       TEXT,
    scheduled_at BIGINT NOT NULL,
    run_at      BIGINT NOT NULL,
    started_at  BIGINT,
    claimed_by  TEXT,                        -- apalis worker executing the attempt
    finished_at BIGINT
);
CREATE INDEX sb_steps_run ON sb_steps (run_id, scheduled_at);

CREATE TABLE sb_waits (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES sb_runs (id),
    seq         BIGINT NOT NULL,            -- the run seq while it waits
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    deadline    BIGINT NOT NULL,
    status      TEXT NOT NULL,               -- waiting | resolved | timed_out | cancelled
    event_id    TEXT,
    created_at  BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX sb_waits_key ON sb_waits (kind, key, status);
CREATE INDEX sb_waits_run ON sb_waits (run_id);

CREATE TABLE sb_events (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    dedupe_key  TEXT NOT NULL UNIQUE,        -- the same external event twice is stored once
    payload     TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    consumed_at BIGINT,
    run_id      TEXT
);
CREATE INDEX sb_events_key ON sb_events (kind, key, consumed_at);
