-- Interruptions of the platform (a node restarted, lost or drained) are
-- counted apart from the task's failures: per run, and flagged on the
-- attempt they ended.
ALTER TABLE runs ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
