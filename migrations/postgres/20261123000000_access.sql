-- Who may call the API. A key is shown once when created; only its SHA-256 is stored. A key with
-- no business is an operator's (every business); revoked keys stay, for the audit log.
CREATE TABLE sb_api_keys (
    id          TEXT PRIMARY KEY,                   -- key_…, shown in listings and the audit log
    business_id TEXT REFERENCES businesses (id),    -- NULL: operator key
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,               -- hex SHA-256 of the whole key
    prefix      TEXT NOT NULL,                      -- the key's first characters, to recognise it
    created_at  BIGINT NOT NULL,                    -- unix ms
    revoked_at  BIGINT
);
CREATE INDEX sb_api_keys_business ON sb_api_keys (business_id);

-- Dashboard sessions: a browser signed in with a key holds the session token in an HttpOnly
-- cookie; actions also need the session's CSRF token in a header. Only the token's hash is stored.
CREATE TABLE sb_sessions (
    token_hash  TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL REFERENCES sb_api_keys (id),
    csrf_token  TEXT NOT NULL,
    expires_at  BIGINT NOT NULL                     -- unix ms
);
CREATE INDEX sb_sessions_key ON sb_sessions (key_id);

-- Operator and script changes: who (key id) did what to which business, when.
CREATE TABLE sb_audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,                    -- unix ms
    actor       TEXT NOT NULL,                      -- key id
    business_id TEXT,                               -- NULL: not about one business
    action      TEXT NOT NULL,                      -- e.g. script.activated, key.revoked
    target      TEXT NOT NULL,                      -- what it acted on (an id)
    detail      TEXT NOT NULL                       -- JSON; never phone numbers or transcripts
);
CREATE INDEX sb_audit_log_business ON sb_audit_log (business_id, id);
