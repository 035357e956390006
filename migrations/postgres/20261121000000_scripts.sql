-- Business scripts: every version kept with its content hash; a run pins the version it started with.
ALTER TABLE sb_steps ADD COLUMN log TEXT;    -- JSON array of lines the attempt logged

CREATE TABLE business_scripts (
    business_id TEXT NOT NULL REFERENCES businesses (id),
    version     BIGINT NOT NULL,             -- 1, 2, … per business
    hash        TEXT NOT NULL,               -- sha256 of the source, hex
    source      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (business_id, version)
);

ALTER TABLE businesses ADD COLUMN script_version BIGINT;   -- the active version, if any

CREATE TABLE run_scripts (
    run_id      TEXT PRIMARY KEY,            -- sb_runs.id
    business_id TEXT NOT NULL,
    version     BIGINT NOT NULL              -- business_scripts.version the run uses
);

-- What happened on each call, for the lead's history seen by scripts.
ALTER TABLE calls ADD COLUMN outcome TEXT;   -- connected | no_answer | busy | voicemail | no_webhook | unknown
ALTER TABLE calls ADD COLUMN score BIGINT;
ALTER TABLE calls ADD COLUMN tag TEXT;
CREATE INDEX calls_lead ON calls (lead_id, created_at);
