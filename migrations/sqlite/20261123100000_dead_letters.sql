-- Provider webhooks whose signature was good but whose processing failed: kept (once per body)
-- for an operator to inspect and replay once the cause is fixed.
CREATE TABLE sb_dead_letters (
    id             TEXT PRIMARY KEY,                -- dl_ + the body's SHA-256, shortened
    provider       TEXT NOT NULL,                   -- e.g. elevenlabs
    body           TEXT NOT NULL,                   -- the raw body as received
    error          TEXT NOT NULL,                   -- why processing failed, last time
    failures       BIGINT NOT NULL,                 -- times processing failed (received again, replays)
    received_at    BIGINT NOT NULL,                 -- unix ms, first time
    last_failed_at BIGINT NOT NULL,                 -- unix ms
    replayed_at    BIGINT                           -- unix ms; set once a replay succeeded
);
CREATE INDEX sb_dead_letters_open ON sb_dead_letters (replayed_at, received_at);
