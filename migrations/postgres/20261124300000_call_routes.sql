-- Analytics: who placed each call and why (the route decision), to compare agents, campaigns and
-- objectives.
ALTER TABLE calls ADD COLUMN agent TEXT;
ALTER TABLE calls ADD COLUMN campaign TEXT;
ALTER TABLE calls ADD COLUMN objective TEXT;
