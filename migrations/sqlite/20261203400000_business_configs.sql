-- Every version of every business' configuration (the content of its business.toml, as JSON).
-- businesses.config keeps a copy of the active version, businesses.config_version its number; a
-- run pins the version it started with in run_configs.
CREATE TABLE business_configs (
    business_id TEXT NOT NULL REFERENCES businesses (id),
    version     INTEGER NOT NULL,             -- 1, 2, … per business
    config      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,             -- unix ms
    PRIMARY KEY (business_id, version)
);

ALTER TABLE businesses ADD COLUMN config_version INTEGER;

INSERT INTO business_configs (business_id, version, config, created_at)
    SELECT id, 1, config, updated_at FROM businesses;
UPDATE businesses SET config_version = 1;

CREATE TABLE run_configs (
    run_id      TEXT PRIMARY KEY,            -- sb_runs.id
    business_id TEXT NOT NULL,
    version     INTEGER NOT NULL              -- business_configs.version the run uses
);
