-- Lead history: the analysis' summary of each connected call, which the next call's context reads.
ALTER TABLE calls ADD COLUMN summary TEXT;
