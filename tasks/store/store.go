package store

import (
	"context"
	"errors"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// Errors that callers match with errors.Is.
var (
	// ErrNotFound: no run (or delivery) of that name.
	ErrNotFound = errors.New("store: not found")
	// ErrIdempotencyConflict: the idempotency key was used before with a
	// different request body.
	ErrIdempotencyConflict = errors.New("store: idempotency key reused with a different request")
	// ErrAlreadyDone: the run is in a terminal phase.
	ErrAlreadyDone = errors.New("store: run already in a terminal phase")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrUnavailable: the database failed, not the request: a lost
	// connection, a lock held too long, an I/O error, a full disk. The
	// same call may succeed later; callers wait and try again (loops back
	// off, the API answers 503 with Retry-After). Store errors that match
	// it also wrap the driver's error.
	ErrUnavailable = errors.New("store: database unavailable")
	// ErrDiskFull: the database's disk is full (SQLite's SQLITE_FULL,
	// PostgreSQL's disk_full). It also matches ErrUnavailable: writes may
	// succeed once space is freed, which needs an operator.
	ErrDiskFull error = &kindError{msg: "store: disk full", parent: ErrUnavailable}
)

// kindError is a sentinel that also matches a broader one.
type kindError struct {
	msg    string
	parent error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.parent }

// Store is the durable state of taskgate: runs with their attempts, events
// and logs, node inventories, the scheduler's leader lease, idempotency keys,
// the webhook outbox and browser sessions. Every method is safe for
// concurrent use. Writes are durable (fsynced) when the method returns.
//
// Methods that take slices write them in one transaction: callers group
// concurrent work into one commit (group commit) to share its fsync.
//
// A failure of the database itself (not of the call's arguments) matches
// ErrUnavailable, and a full disk ErrDiskFull, with errors.Is.
type Store interface {
	// CreateRuns inserts runs in one transaction, each in phase queued with
	// a first event (seq 1). A run whose (Owner, IdempotencyKey) was seen
	// before is not inserted: its result names the existing run with
	// Created false, or carries ErrIdempotencyConflict when the request hash
	// differs. Results are in the order of runs.
	CreateRuns(ctx context.Context, runs []NewRun) ([]CreateResult, error)

	// Transition applies conditional phase changes in one transaction, in
	// order. A change whose preconditions do not hold is skipped
	// (Applied false), never an error: that is how two actors racing on one
	// run (a node finishing it, a scheduler requeueing it) agree on a single
	// outcome.
	Transition(ctx context.Context, ts []Transition) ([]TransitionResult, error)

	// RequestAbort aborts a queued or waiting run at once (Terminal true in
	// the result), or flags an initializing or running one for its node to
	// cancel. A terminal run gives ErrAlreadyDone.
	RequestAbort(ctx context.Context, name, reason string, at time.Time) (AbortResult, error)

	// GetRun returns a run with its attempts, or ErrNotFound.
	GetRun(ctx context.Context, name string) (*StoredRun, error)
	// ListRuns returns runs newest first, without attempts.
	ListRuns(ctx context.Context, f RunFilter) ([]*StoredRun, error)
	// ActiveRuns returns every non-terminal run, oldest first, for the
	// scheduler to rebuild its queue and for node recovery. Node, when not
	// empty, keeps only the runs bound to that node (initializing or
	// running), found by an index: the cost is the node's runs, not the
	// backlog's.
	ActiveRuns(ctx context.Context, node string) ([]*StoredRun, error)
	// CountActiveRuns counts the non-terminal runs by phase, from the
	// phase index alone: what GET /queue and the metrics show, at a cost
	// that reads no run's row however long the backlog.
	CountActiveRuns(ctx context.Context) (map[tasks.Phase]int, error)
	// BoundRuns returns what a node agent's periodic check reads of the
	// runs bound to node (initializing or running), in no set order: their
	// names, attempts, phases and abort requests, not their inputs, so that
	// the check costs little whatever the node holds. The index that
	// ActiveRuns uses for a node finds them.
	BoundRuns(ctx context.Context, node string) ([]BoundRun, error)
	// ActivePlacements returns the placement columns of every
	// non-terminal run, oldest first: what a scheduler taking over reads
	// to rebuild its state, a fraction of ActiveRuns' bytes per run.
	ActivePlacements(ctx context.Context) ([]Placement, error)
	// QueuedRunsAfter returns queued runs with Seq > afterSeq, oldest
	// first, at most limit: what the scheduler polls for new submissions.
	QueuedRunsAfter(ctx context.Context, afterSeq int64, limit int) ([]*StoredRun, error)
	// Events returns the run's events with Seq > afterSeq, in order.
	Events(ctx context.Context, name string, afterSeq int64) ([]tasks.Event, error)

	// AppendLogs stores log lines written by running tasks.
	AppendLogs(ctx context.Context, lines []LogLine) error
	// Logs returns a run's log lines in the order they were written.
	Logs(ctx context.Context, run string) ([]LogLine, error)
	// LogsAfter returns at most limit of a run's log lines with Seq >
	// afterSeq, in the order they were written: what a follower of the
	// run's logs polls.
	LogsAfter(ctx context.Context, run string, afterSeq int64, limit int) ([]LogLine, error)

	// SetProgress records the latest progress of runs, in one transaction.
	// An update whose Attempt is no longer the run's current one is
	// skipped: a late write of an ended attempt must not hide the next
	// attempt's.
	SetProgress(ctx context.Context, ps []ProgressUpdate) error

	// UpsertNode records a node's inventory and sets its heartbeat.
	UpsertNode(ctx context.Context, n Node) error
	// Heartbeat refreshes a node's heartbeat; ErrNotFound when the node is
	// not registered (it was removed as dead and must register again).
	Heartbeat(ctx context.Context, id string, at time.Time) error
	// Nodes lists registered nodes by ID.
	Nodes(ctx context.Context) ([]Node, error)
	// DeleteNode forgets a node.
	DeleteNode(ctx context.Context, id string) error

	// AcquireLease takes or renews the named lease for holder until now+ttl.
	// It succeeds when the lease is free, expired, or already held by
	// holder. Expiry is judged by the store's clock in PostgreSQL (so that
	// processes with skewed clocks agree) and by now in SQLite.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if holder holds it.
	ReleaseLease(ctx context.Context, name, holder string) error

	// EnqueueDelivery adds a webhook delivery to the outbox. The dispatcher
	// also enqueues deliveries itself, inside the transaction of the phase
	// change that causes them (see Transition).
	EnqueueDelivery(ctx context.Context, d NewDelivery) (Delivery, error)
	// ClaimDueDeliveries returns up to limit pending deliveries whose
	// NextAttemptAt is at or before now, and pushes their NextAttemptAt to
	// now+ClaimTTL so that a concurrent worker does not take them too. A
	// worker that dies mid-delivery thus has it retried after ClaimTTL.
	// A delivery is not returned while an earlier one of its run (lower
	// Seq) is pending: a run's callbacks go out one at a time, in order,
	// each once the previous was delivered or given up; different runs'
	// go out together.
	ClaimDueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	// RecordDeliveryAttempt stores the outcome of one POST. With a.Done the
	// delivery leaves the outbox (delivered, or given up when a.Error or a
	// non-2xx status says why); otherwise it is due again at a.NextAttemptAt.
	// An attempt recorded after the delivery left the outbox (another
	// worker settled it once this one's claim expired) changes nothing.
	RecordDeliveryAttempt(ctx context.Context, id string, a DeliveryAttempt) error
	// RecordDeliveries writes back claimed deliveries, in order: attempts
	// as RecordDeliveryAttempt does, and postponements. A record of a
	// delivery that is no longer pending (settled by another worker, or
	// deleted with its run) changes nothing and is no error, so one stale
	// record never costs the others theirs. Then, when next.Limit > 0, it
	// claims as ClaimDueDeliveries does and returns what it claimed. All
	// in one transaction: a worker's records and its next claim share a
	// commit, and its fsync.
	RecordDeliveries(ctx context.Context, rs []DeliveryRecord, next DeliveryClaim) ([]Delivery, error)
	// ListDeliveries returns a run's deliveries with their attempts, by
	// Seq.
	ListDeliveries(ctx context.Context, run string) ([]Delivery, error)

	// PurgeRuns clears inputs, outputs and logs of runs that finished
	// before the given time. It returns how many runs it purged.
	PurgeRuns(ctx context.Context, finishedBefore time.Time) (int, error)
	// DeleteRuns deletes at most limit runs that finished before the
	// given time, oldest first, with everything recorded of them:
	// attempts, events, logs, webhook deliveries and idempotency keys (a
	// request retried with the key of a deleted run starts a new run). It
	// returns how many runs it deleted.
	DeleteRuns(ctx context.Context, finishedBefore time.Time, limit int) (int, error)

	// Listen delivers notifications of committed changes, from this process
	// and (PostgreSQL) from every process sharing the database, until ctx is
	// done. A slow listener loses notifications rather than stalling
	// writers; notifications are hints to re-read the store, never the data.
	Listen(ctx context.Context) <-chan Notification

	// Sessions keeps the browser sessions signed in at /auth/login.
	Sessions

	// Ping checks that the database answers (a readiness probe): a cheap
	// round trip that reads nothing.
	Ping(ctx context.Context) error

	// Close releases the database.
	Close() error
}

// NotificationKind says what changed.
type NotificationKind string

// Notification kinds.
const (
	// NotifyEvent: a run recorded an event (Run, Seq, Phase set, and Node
	// when the run is bound to one).
	NotifyEvent NotificationKind = "event"
	// NotifySubmitted: new runs were queued.
	NotifySubmitted NotificationKind = "submitted"
	// NotifyAbort: an initializing or running run was asked to stop (Run,
	// Node set).
	NotifyAbort NotificationKind = "abort"
	// NotifyOverflow: notifications were lost; listeners should re-read.
	NotifyOverflow NotificationKind = "overflow"
)

// Notification is a hint that something changed in the store.
type Notification struct {
	Kind  NotificationKind `json:"k"`
	Run   string           `json:"r,omitempty"`
	Seq   int64            `json:"s,omitempty"`
	Phase tasks.Phase      `json:"p,omitempty"`
	Node  string           `json:"n,omitempty"`
	// Attempt is the run's attempt number (NotifyEvent).
	Attempt int `json:"a,omitempty"`
	// Delivery is set on the event whose change enqueued a webhook
	// delivery (NotifyEvent), so that every process's webhook worker can
	// look at once without reading the run.
	Delivery bool `json:"d,omitempty"`
	// Local is set when the change was committed through the Store value
	// that delivers the notification (this process), not another process.
	Local bool `json:"-"`
}
