-- Policy backtests (POST /api/v1/businesses/{id}/script/backtest): a candidate script replayed
-- over a business' recorded decisions, its progress and, once done, its report. Read-only
-- towards everything else; kept a week (the hourly sweep deletes older ones).
CREATE TABLE backtests (
    id             TEXT PRIMARY KEY,            -- bt_ + random
    business_id    TEXT NOT NULL REFERENCES businesses (id),
    candidate_hash TEXT NOT NULL,               -- sha256 of the candidate source
    request        TEXT NOT NULL,               -- JSON {from, to, hooks, limit}
    status         TEXT NOT NULL,               -- running | done | failed
    total          INTEGER NOT NULL,            -- decisions to replay
    done           INTEGER NOT NULL,            -- decisions replayed so far
    report         TEXT,                        -- JSON, once done
    error          TEXT,                        -- why it failed
    created_at     INTEGER NOT NULL,            -- unix ms
    updated_at     INTEGER NOT NULL,            -- the last progress (a stale running one was cut off)
    finished_at    INTEGER
);
CREATE INDEX backtests_business ON backtests (business_id, created_at);
