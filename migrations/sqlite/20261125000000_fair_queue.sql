-- Fair queueing between businesses: a run's rank is how many runs of its business were ready to
-- run when it started (capped); its step tasks are fetched before those of runs ranked lower, so
-- one business' big import does not hold back another business' fresh lead.
ALTER TABLE sb_runs ADD COLUMN queue_rank INTEGER NOT NULL DEFAULT 0;
