-- Each business' do-not-call list: a number on it is never dialled for that business (intake
-- refuses it, an import rejects its row, a cron campaign skips it, every dial checks it).
CREATE TABLE do_not_call (
    business_id TEXT NOT NULL,
    phone       TEXT NOT NULL,              -- E.164
    reason      TEXT NOT NULL,              -- 'listed' (through the API) or 'opted_out' (asked on a call)
    note        TEXT,
    added_at    INTEGER NOT NULL,           -- Unix ms
    PRIMARY KEY (business_id, phone)
);
