-- Deleting old terminal runs whole (Store.DeleteRuns): find them by end
-- time, and their idempotency keys by run.
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at > 0;
CREATE INDEX idempotency_keys_run ON idempotency_keys (run);
