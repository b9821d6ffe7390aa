-- Run logs name their stream (log, stdout or stderr) for GET /run/{name}/logs;
-- a run keeps the latest progress its task reported (tasks.Progress) as
-- JSON ('' when none). Lines stored before keep stream 'log', with their
-- stream, if any, among their attributes.
ALTER TABLE logs ADD COLUMN stream TEXT NOT NULL DEFAULT 'log';
ALTER TABLE runs ADD COLUMN progress TEXT NOT NULL DEFAULT '';
