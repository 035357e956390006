-- Businesses waiting for a shared call line (held back by a global cap): a line that frees goes
-- to the one with the fewest calls in flight. A row not seen for a few seconds no longer counts.
CREATE TABLE call_line_waits (
    business_id TEXT PRIMARY KEY,
    since       INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL
);
