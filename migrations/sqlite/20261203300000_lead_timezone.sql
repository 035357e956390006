-- The person's IANA timezone when the business gave one with the lead; NULL: derived from the
-- phone number's region when a call is due.
ALTER TABLE leads ADD COLUMN timezone TEXT;
