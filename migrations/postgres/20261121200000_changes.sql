-- Every change of a run's state: the feed behind GET /api/v1/events (server-sent events), read by
-- every process, so a change made by any worker reaches every client. Ids are assigned at insert,
-- so a reader waits briefly at a gap for the transaction that holds it to commit.
CREATE TABLE sb_changes (
    id           BIGSERIAL PRIMARY KEY,              -- the event id clients resume from
    run_id       TEXT NOT NULL,
    business_id  TEXT NOT NULL,
    status       TEXT NOT NULL,
    current_step TEXT,
    outcome      TEXT,
    at           BIGINT NOT NULL                     -- unix ms
);
CREATE INDEX sb_changes_at ON sb_changes (at);

-- Runs per status of one business (the runs page's counts) straight from an index.
CREATE INDEX sb_runs_business_status ON sb_runs (business_id, status);
