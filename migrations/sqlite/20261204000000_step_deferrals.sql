-- A deferred attempt (a line busy, the provider's breaker open) waits again as the same row,
-- counting its deferrals and keeping the last one's reason, instead of writing a new row each time
-- it is put off.
ALTER TABLE sb_steps ADD COLUMN deferrals INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sb_steps ADD COLUMN deferred_because TEXT;
