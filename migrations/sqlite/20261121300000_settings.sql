-- Values every process of one deployment must agree on and that nobody configured, e.g. the
-- simulator's webhook secret when none is set: the first process stores one, the rest read it.
CREATE TABLE sb_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
