-- The runs bound to a node (what its agent rescans every few seconds and
-- recovers at start, what the scheduler requeues when the node dies),
-- found without walking every active run: with a backlog of a million
-- queued runs the walk by phase took longer than the rescan's period
-- (issue 19). Partial, so that queued and finished runs cost it nothing.
CREATE INDEX runs_bound ON runs (node, seq) WHERE phase IN ('initializing', 'running');
