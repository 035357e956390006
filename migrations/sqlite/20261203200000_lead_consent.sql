-- The person's prior consent to be called, as the business recorded it (JSON: source, at, text,
-- reference); NULL when none was given.
ALTER TABLE leads ADD COLUMN consent TEXT;
