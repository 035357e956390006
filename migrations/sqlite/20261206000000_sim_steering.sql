-- Simulator steering (demo and tests) moves out of the production `leads` table into a table of
-- its own, one row per lead that came with one.
CREATE TABLE sim_steering (
    lead_id TEXT PRIMARY KEY,
    steer   TEXT NOT NULL                    -- JSON: outcome, deliver_webhook, webhook_delay_ms
);
INSERT INTO sim_steering (lead_id, steer) SELECT id, sim FROM leads WHERE sim IS NOT NULL;
ALTER TABLE leads DROP COLUMN sim;
