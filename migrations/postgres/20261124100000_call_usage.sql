-- Usage metering: a call's length once it ended, and the credits it costs (one per started
-- minute: 2:13 → 3), recorded per call.
ALTER TABLE calls ADD COLUMN duration_secs BIGINT;
ALTER TABLE calls ADD COLUMN credits BIGINT;
CREATE INDEX calls_business_ended ON calls (business_id, ended_at);
