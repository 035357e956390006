-- Lead pipeline tables: businesses, leads and the calls placed for them.
CREATE TABLE businesses (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    config      TEXT NOT NULL,               -- the business definition as JSON
    updated_at  INTEGER NOT NULL
);

CREATE TABLE leads (
    id              TEXT PRIMARY KEY,
    business_id     TEXT NOT NULL REFERENCES businesses (id),
    name            TEXT NOT NULL,
    phone           TEXT NOT NULL,           -- E.164
    email           TEXT,
    source          TEXT,
    custom_fields   TEXT NOT NULL,
    sim             TEXT,                    -- simulator steering, demo and tests only
    idempotency_key TEXT,
    run_id          TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX leads_idempotency ON leads (business_id, idempotency_key);
CREATE INDEX leads_phone ON leads (business_id, phone);

CREATE TABLE calls (
    id              TEXT PRIMARY KEY,        -- the call key sent to the provider: <run>:<attempt>
    run_id          TEXT NOT NULL,
    lead_id         TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    status          TEXT NOT NULL,           -- dialing | placed | rejected | unknown
    conversation_id TEXT,
    request         TEXT NOT NULL,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX calls_attempt ON calls (run_id, attempt);
CREATE INDEX calls_conversation ON calls (conversation_id);
