// Package sqlstore implements store.Store once over SQL that SQLite and
// PostgreSQL both accept ($N placeholders, ON CONFLICT, RETURNING, row
// values). The sqlite and postgres packages adapt their drivers to DB and
// supply a Dialect with the few differences: locking clauses, the clock used
// for leases, and how notifications cross processes.
//
// Times are stored as Unix nanoseconds in BIGINT columns (0 for "never"),
// lists and identities as JSON text, and flags as integers, so that one set
// of scanning code serves both databases.
//
// The Store's methods are grouped by concern, one file each: store.go (the
// type, transactions, Ping and Close), submit.go (CreateRuns and
// idempotency keys), transition.go (Transition, RequestAbort), history.go
// (the attempts and events a change appends), reads.go (GetRun, lists,
// Events), outbox.go (webhook deliveries), nodes.go (nodes and the leader
// lease), logs.go, retention.go (PurgeRuns, DeleteRuns), sqlbuild.go
// (multi-row statements and their chunking) and columns.go (how values are
// encoded in columns).
//
// On the data path (request → auth → environment → dispatcher → scheduler →
// node agent → store → callbacks) it is the store step, behind the sqlite
// and postgres packages: nothing else may import it (it is internal to
// tasks/store). It imports only tasks and tasks/store, never a driver (the
// adapters bring theirs), the dispatcher, middleware, environments or
// framework.
package sqlstore
