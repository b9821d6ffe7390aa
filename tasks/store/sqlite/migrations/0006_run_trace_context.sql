-- The W3C traceparent a run was submitted in, so that its attempts (in
-- any process, after restarts) and its webhook deliveries continue the
-- submit's trace; empty when the submit was not traced.
ALTER TABLE runs ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';
