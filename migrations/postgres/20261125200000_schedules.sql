-- Cron campaigns. A tick fires once: the first process to insert its row starts its runs, in
-- the same transaction; the others find the row there and do nothing.
CREATE TABLE schedule_ticks (
    business_id  TEXT NOT NULL,
    schedule     TEXT NOT NULL,
    tick_at      BIGINT NOT NULL,           -- the tick's time (Unix ms)
    fired_at     BIGINT NOT NULL,
    runs_started BIGINT NOT NULL,
    PRIMARY KEY (business_id, schedule, tick_at)
);

-- A row while a schedule is paused: its ticks pass without firing.
CREATE TABLE schedule_pauses (
    business_id TEXT NOT NULL,
    schedule    TEXT NOT NULL,
    paused_at   BIGINT NOT NULL,
    PRIMARY KEY (business_id, schedule)
);
