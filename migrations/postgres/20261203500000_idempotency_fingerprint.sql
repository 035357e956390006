-- A fingerprint (SHA-256 of the canonical request) of the lead request an Idempotency-Key came
-- with: the same key with a different request is refused instead of replayed. NULL for leads
-- created without a key, by an import, or before fingerprints were kept.
ALTER TABLE leads ADD COLUMN idempotency_fingerprint TEXT;
