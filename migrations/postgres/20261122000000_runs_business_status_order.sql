-- One business' runs in one status, newest first (the runs page filtered by both), read in index
-- order: without `id` PostgreSQL sorted every matching run (140 ms at 1,000,000 runs).
DROP INDEX sb_runs_business_status;
CREATE INDEX sb_runs_business_status ON sb_runs (business_id, status, id);
