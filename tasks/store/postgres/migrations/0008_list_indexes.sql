-- GET /runs filters by owner, task and phase, alone or together, newest
-- first. Every combination reads index ranges already in seq order, so a
-- page costs the same with a million runs stored as with a hundred:
--   - no owner and no task: the primary key, or runs_phase per phase;
--   - owner: runs_owner_phase; task: runs_task_phase; both:
--     runs_owner_task_phase, one range per phase asked for (all of them
--     when none is), merged by seq (sqlstore.ListRunsQuery).
-- Ending every index with phase then seq (not seq alone) serves the
-- filters with and without phases by the same few indexes: runs_owner
-- (owner, seq) is dropped, since runs_owner_phase answers an owner's list
-- as the merge of its eight phases.
DROP INDEX runs_owner;
CREATE INDEX runs_owner_phase ON runs (owner, phase, seq);
CREATE INDEX runs_task_phase ON runs (project, domain, task, phase, seq);
CREATE INDEX runs_owner_task_phase ON runs (owner, project, domain, task, phase, seq);
