-- Interruptions of the platform (a node restarted, lost or drained) are
-- counted apart from the task's failures: per run, and flagged on the
-- attempt they ended. A constant default adds the columns without
-- rewriting the tables.
ALTER TABLE runs ADD COLUMN interruptions BIGINT NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN interrupted BIGINT NOT NULL DEFAULT 0;
