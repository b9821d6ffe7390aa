package sqlstore

import (
	"context"

	"github.com/taskgate/taskgate/tasks/store"
)

// Rows is the part of a result set sqlstore reads.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Querier runs statements.
type Querier interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, sql string, args ...any) (int64, error)
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
}

// Tx is a write transaction.
type Tx interface {
	Querier
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// DB is a database handle: reads go to Query and Exec, writes through Begin.
type DB interface {
	Querier
	Begin(ctx context.Context) (Tx, error)
	Close() error
}

// Dialect carries the differences between the databases.
type Dialect struct {
	// ForUpdate locks rows read in a write transaction (" FOR UPDATE" in
	// PostgreSQL; SQLite's single writer needs nothing).
	ForUpdate string
	// SkipLocked makes concurrent delivery claims skip each other's rows.
	SkipLocked string
	// OutboxPlan, when set, is executed first in a transaction that records
	// or claims deliveries: it keeps their plans on the outbox's indexes
	// whatever the table's statistics say (PostgreSQL's planner settings,
	// local to the transaction). See outbox.go.
	OutboxPlan string
	// LeaseNow, when set, is an SQL expression for the database's clock in
	// Unix nanoseconds, so that lease expiry does not depend on the clocks
	// of competing processes. When empty the caller's clock is used.
	LeaseNow string
	// MigrationLock, when set, is executed first in the migration
	// transaction to serialize processes migrating at once.
	MigrationLock string
	// Notify, when set, sends notifications from inside the transaction
	// that caused them to the other processes (PostgreSQL's pg_notify,
	// delivered at commit to every listening process); the adapter feeds
	// what it receives from them to Store.Publish, and drops its own, which
	// the Store publishes to in-process listeners after commit in any case:
	// decoding them back cost a tenth of a backlog drain's CPU (issue 19).
	Notify func(ctx context.Context, tx Tx, ns []store.Notification) error
	// LastInsertSeq, when set, is a query for the seq of the last run
	// inserted. A database whose single writer gives the rows of one INSERT
	// consecutive seqs (SQLite) then inserts runs without RETURNING.
	LastInsertSeq string
	// ArrayInsert inserts a batch of runs with one statement of array
	// parameters (PostgreSQL's unnest) instead of multi-row VALUES: one
	// statement text whatever the batch size. (Finding a group of runs with
	// name = ANY($n) instead of an IN list was measured slower: the
	// generic plan of a prepared statement does not know the array's size.)
	ArrayInsert bool
	// MaxParams bounds the parameters of one statement.
	MaxParams int
	// SeqMerge makes ListRunsQuery merge the seqs alone (index-only
	// scans), each arm of the UNION ALL with its own ORDER BY and LIMIT in
	// parentheses, then read the runs of those seqs by primary key.
	// PostgreSQL plans that as a Merge Append of backward index-only scans
	// even in a prepared statement's generic plan (one plan for every
	// value, after five runs), where whole rows would have it take an owner
	// or task it cannot see as common and walk the primary key back,
	// filtering, through every run when the one asked for has few. SQLite
	// plans for the statement, merges plain arms in order, and rejects the
	// parentheses.
	SeqMerge bool
	// IndexedBy names the index each arm of ListRunsQuery reads (SQLite's
	// INDEXED BY, or NOT INDEXED for the primary key). Without it SQLite
	// may take a creation-time window's seq range on runs_phase, or on
	// the primary key, for the narrower range and filter the owner, task
	// or phase row by row: a page then costs the window's runs, not a
	// page's. The index that serves a filter is known from the filter.
	IndexedBy bool
	// PlanEach, put before a statement's arguments, has the database plan
	// that statement for its values at each run instead of once for all
	// values (pgx.QueryExecModeExec: an unnamed statement). ListRuns
	// uses it for a creation-time window: PostgreSQL's generic plan takes
	// the window's seq range, whatever its size, as a small one, and
	// walks the primary key through it filtering the rest (measured: 0.8
	// s a page for a rare phase of a task over 600,000 runs, against 15
	// ms by the task's index), where a plan for the values weighs the
	// range's size.
	PlanEach any
	// CastParams casts the parameters whose type nothing else in a
	// statement fixes (the branches of a CASE, a VALUES list), which
	// PostgreSQL would otherwise take as text. SQLite needs no casts.
	CastParams bool
	// Classify, when set, names the driver errors that are the database's
	// own failures: it returns store.ErrDiskFull or store.ErrUnavailable
	// for them and nil for the rest. The Store wraps what it names, so
	// callers can tell a full disk or a lost database from a bad request.
	Classify func(error) error
}

// cast is param with the SQL type typ where the dialect needs it.
func (d Dialect) cast(param, typ string) string {
	if d.CastParams {
		return param + "::" + typ
	}
	return param
}

// blobType is the type of binary columns (outputs).
func (d Dialect) blobType() string {
	if d.CastParams {
		return "bytea"
	}
	return "blob"
}
