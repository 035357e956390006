-- Provider integrations: which business a call belongs to and when it ended (the concurrent-call
-- caps count calls dialing or placed and not yet ended), and the agents created at the voice
-- provider from each business' configuration.
ALTER TABLE calls ADD COLUMN business_id TEXT;
ALTER TABLE calls ADD COLUMN ended_at INTEGER;  -- the call's end was learnt (webhook or lookup)
CREATE INDEX calls_in_flight ON calls (status, ended_at);

CREATE TABLE provider_agents (
    business_id       TEXT NOT NULL REFERENCES businesses (id),
    agent             TEXT NOT NULL,        -- the key in the business' [agents]
    provider          TEXT NOT NULL,        -- elevenlabs
    provider_agent_id TEXT NOT NULL,
    config_hash       TEXT NOT NULL,        -- sha256 of the agent as last sent to the provider
    synced_at         INTEGER NOT NULL,
    PRIMARY KEY (business_id, agent, provider)
);

-- Calls recorded before this migration that are over hold no line.
UPDATE calls SET ended_at = updated_at
WHERE ended_at IS NULL AND (outcome IS NOT NULL OR status IN ('rejected', 'unknown'));

-- The event a run waits on during a call became provider-neutral.
UPDATE sb_waits SET kind = 'call.ended' WHERE kind = 'elevenlabs.call';
UPDATE sb_runs SET wait_kind = 'call.ended' WHERE wait_kind = 'elevenlabs.call';
UPDATE sb_events SET kind = 'call.ended' WHERE kind = 'elevenlabs.call';
