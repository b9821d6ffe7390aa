-- Runs, their attempts, events and logs; nodes; the leader lease;
-- idempotency keys; the webhook outbox. Times are Unix nanoseconds (0 = never).
CREATE TABLE runs (
	seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name            TEXT NOT NULL UNIQUE,
	project         TEXT NOT NULL,
	domain          TEXT NOT NULL,
	task            TEXT NOT NULL,
	version         TEXT NOT NULL,
	owner           TEXT NOT NULL,
	caller          TEXT NOT NULL DEFAULT '',
	phase           TEXT NOT NULL,
	priority        BIGINT NOT NULL DEFAULT 0,
	inputs          BYTEA,
	outputs         BYTEA,
	error           TEXT NOT NULL DEFAULT '',
	attempt         BIGINT NOT NULL DEFAULT 0,
	failures        BIGINT NOT NULL DEFAULT 0,
	node            TEXT NOT NULL DEFAULT '',
	devices         TEXT NOT NULL DEFAULT '',
	webhook         TEXT NOT NULL DEFAULT '',
	webhook_events  TEXT NOT NULL DEFAULT '',
	abort_reason    TEXT NOT NULL DEFAULT '',
	abort_requested BIGINT NOT NULL DEFAULT 0,
	wait_reason     TEXT NOT NULL DEFAULT '',
	not_before      BIGINT NOT NULL DEFAULT 0,
	event_seq       BIGINT NOT NULL DEFAULT 0,
	created_at      BIGINT NOT NULL,
	started_at      BIGINT NOT NULL DEFAULT 0,
	finished_at     BIGINT NOT NULL DEFAULT 0,
	purged          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_owner ON runs (owner, seq);
CREATE INDEX runs_phase ON runs (phase, seq);
CREATE INDEX runs_unpurged ON runs (finished_at) WHERE purged = 0 AND finished_at > 0;

CREATE TABLE attempts (
	run         TEXT NOT NULL,
	number      BIGINT NOT NULL,
	node        TEXT NOT NULL,
	devices     TEXT NOT NULL,
	phase       TEXT NOT NULL,
	error       TEXT NOT NULL,
	started_at  BIGINT NOT NULL,
	finished_at BIGINT NOT NULL,
	PRIMARY KEY (run, number)
);

CREATE TABLE events (
	run   TEXT NOT NULL,
	seq   BIGINT NOT NULL,
	phase TEXT NOT NULL,
	at    BIGINT NOT NULL,
	error TEXT NOT NULL,
	PRIMARY KEY (run, seq)
);

CREATE TABLE logs (
	id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	run     TEXT NOT NULL,
	attempt BIGINT NOT NULL,
	at      BIGINT NOT NULL,
	level   TEXT NOT NULL,
	message TEXT NOT NULL,
	attrs   TEXT NOT NULL
);
CREATE INDEX logs_run ON logs (run, id);

CREATE TABLE idempotency_keys (
	owner      TEXT NOT NULL,
	key        TEXT NOT NULL,
	hash       TEXT NOT NULL,
	run        TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (owner, key)
);

CREATE TABLE nodes (
	id           TEXT PRIMARY KEY,
	inventory    TEXT NOT NULL,
	heartbeat_at BIGINT NOT NULL,
	started_at   BIGINT NOT NULL
);

CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	holder     TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);

CREATE TABLE deliveries (
	id              TEXT PRIMARY KEY,
	run             TEXT NOT NULL,
	url             TEXT NOT NULL,
	event           TEXT NOT NULL,
	payload         BYTEA,
	state           TEXT NOT NULL,
	attempts        BIGINT NOT NULL DEFAULT 0,
	next_attempt_at BIGINT NOT NULL,
	created_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_run ON deliveries (run);

CREATE TABLE delivery_attempts (
	delivery TEXT NOT NULL,
	number   BIGINT NOT NULL,
	at       BIGINT NOT NULL,
	status   BIGINT NOT NULL,
	error    TEXT NOT NULL,
	PRIMARY KEY (delivery, number)
);
