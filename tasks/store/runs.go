package store

import (
	"encoding/json"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// NewRun is a run to insert.
type NewRun struct {
	Name     string
	Project  string
	Domain   string
	Task     string
	Version  string
	Caller   Caller
	Priority int
	Inputs   json.RawMessage
	// IdempotencyKey, when set, is unique per Caller.Subject.
	IdempotencyKey string
	// RequestHash identifies the request body for idempotency (SHA-256 of
	// task ID and inputs, hex).
	RequestHash   string
	Webhook       string
	WebhookEvents []string
	CreatedAt     time.Time
	// TraceParent is the W3C traceparent of the submit's span, kept
	// with the run (StoredRun.TraceParent); empty when not traced.
	TraceParent string
}

// CreateResult is the outcome of one NewRun.
type CreateResult struct {
	// Name is the run's name: the new one, or the existing run of the
	// idempotency key.
	Name    string
	Created bool
	// Seq orders runs by insertion; zero when not created.
	Seq int64
	// CreatedAt is the run's creation time as stored: the NewRun's, or
	// the latest this store stored before it when that is later, so that
	// creation times follow seq order (CreatedSkew); zero when not
	// created.
	CreatedAt time.Time
	// Err is ErrIdempotencyConflict or nil.
	Err error
}

// StoredRun is a run with the bookkeeping the dispatcher needs beside the
// public tasks.Run.
type StoredRun struct {
	tasks.Run
	// Seq orders runs by insertion.
	Seq    int64
	Caller Caller
	// Failures counts failed attempts (RetryAfter does not count).
	Failures int
	// Interruptions counts the attempts that ended by an interruption of
	// the platform (Transition.Interrupted), which are not failures.
	Interruptions int
	// NotBefore delays placement of a retried run; zero means now.
	NotBefore time.Time
	// WaitReason says why the scheduler could not place the run.
	WaitReason string
	// AbortRequested is set on an initializing or running run that should
	// be cancelled.
	AbortRequested bool
	// EventSeq is the Seq of the run's last event.
	EventSeq int64
	// Purged is set once inputs and outputs were removed after retention.
	Purged bool
	// TraceParent is the W3C traceparent the run was submitted in; empty
	// when the submit was not traced.
	TraceParent string
}

// Placement is what the scheduler reads of an active run to place it,
// or to count what it holds: its identity, order, task and binding, none
// of its inputs, outputs or caller (ActivePlacements).
type Placement struct {
	Name     string
	Seq      int64
	Project  string
	Domain   string
	Task     string
	Phase    tasks.Phase
	Priority int
	// Attempt, Node and Devices are those of a bound run.
	Attempt int
	Node    string
	Devices []string
	// NotBefore delays placement of a retried run; zero means now.
	NotBefore time.Time
}

// BoundRun is what BoundRuns reads of a run bound to a node.
type BoundRun struct {
	Name    string
	Attempt int
	Phase   tasks.Phase
	// AbortRequested and AbortReason are StoredRun's.
	AbortRequested bool
	AbortReason    string
}

// Binding starts a new attempt of a run on a node.
type Binding struct {
	Node    string
	Devices []string
}

// Transition is one conditional change of a run's phase.
type Transition struct {
	Run string
	// From lists the phases the run may be in; empty means any
	// non-terminal phase. A terminal run never changes.
	From []tasks.Phase
	// Attempt, when not zero, must be the run's current attempt number.
	Attempt int
	// Node, when not empty, must be the node the run is bound to.
	Node string

	// To is the new phase.
	To tasks.Phase
	At time.Time
	// Bind, with To initializing, starts attempt number current+1 on a
	// node with devices.
	Bind *Binding
	// Start, with Bind and To running, binds and starts the attempt in one
	// change, recording the initializing event then the running one: for a
	// node that executes in process and has nothing to initialize.
	Start bool
	// AttemptPhase, when set, closes the current attempt record with this
	// phase and AttemptError (a retry going back to queued, or the end).
	// With a terminal To it defaults to To.
	AttemptPhase tasks.Phase
	AttemptError string
	// Error is the run's error, kept with a terminal phase; also carried
	// by the event.
	Error string
	// Outputs, with To succeeded.
	Outputs json.RawMessage
	// NotBefore, with To queued, delays placement.
	NotBefore time.Time
	// CountFailure adds one to the run's failure count.
	CountFailure bool
	// Interrupted marks the attempt this change ends (AttemptPhase, or a
	// terminal To) as ended by an interruption of the platform, and adds
	// one to the run's interruption count.
	Interrupted bool
	// WaitReason, with To waiting_for_resources (may also refresh the reason
	// of a run already waiting: From waiting, To waiting).
	WaitReason string
}

// TransitionResult is the outcome of one Transition.
type TransitionResult struct {
	Applied bool
	// Run is the run after the change (without attempts); nil when not
	// applied.
	Run *StoredRun
	// Event is the (last) event recorded; zero when not applied or when
	// the phase did not change (a refreshed wait reason records no event).
	Event tasks.Event
	// Events are every event recorded, oldest first: two with Start.
	Events []tasks.Event
	// Delivery is set when the change enqueued a webhook delivery.
	Delivery bool
}

// AbortResult is the outcome of RequestAbort.
type AbortResult struct {
	Run *StoredRun
	// Terminal is set when the run was aborted at once (it was queued);
	// otherwise its node must cancel it.
	Terminal bool
	Event    tasks.Event
}

// CreatedSkew bounds how far out of seq order runs' creation times may
// be for RunFilter's time window: a run stored after another (a higher
// seq) was created no more than CreatedSkew before it. Within one process
// they are in order: CreateRuns moves a run's creation time forward to
// the latest it stored before, when a batch that was accepted earlier
// reaches the database after a later one (CreateResult.CreatedAt). Between
// processes (API replicas on PostgreSQL) that holds only as far as their
// clocks agree: within CreatedSkew, as NTP keeps them.
const CreatedSkew = time.Second

// RunFilter selects runs for ListRuns.
type RunFilter struct {
	// Owner keeps runs of one subject; empty keeps all.
	Owner string
	// Phases keeps runs in any of these; empty keeps all.
	Phases []tasks.Phase
	// Task is "project/domain/name"; empty keeps all.
	Task string
	// CreatedAfter keeps runs created at or after it; zero means none.
	// CreatedBefore keeps runs created before it; zero means none.
	//
	// The store finds the seqs that bound the window by a binary search
	// of the seq order, so that a window costs an index range like the
	// other filters, whatever the table holds. That relies on creation
	// times that follow seq order up to CreatedSkew, as runs submitted
	// through dispatch do; a run stored out of that order by more than
	// CreatedSkew may be missed at a window's edge.
	CreatedAfter, CreatedBefore time.Time
	// BeforeSeq keeps runs with Seq below it (cursor); zero means none.
	BeforeSeq int64
	// Limit bounds the result; zero means 100.
	Limit int
}

// LogLine is one line a task wrote with tasks.Logger, or a line of a
// subprocess's output.
type LogLine struct {
	// Seq numbers the store's lines in the order they were written (set
	// by reads; ignored by AppendLogs). It grows across runs, not by one.
	Seq     int64     `json:"seq"`
	Run     string    `json:"run"`
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Level   string    `json:"level"`
	// Stream is StreamLog, StreamStdout or StreamStderr; empty means
	// StreamLog.
	Stream  string          `json:"stream"`
	Message string          `json:"message"`
	Attrs   json.RawMessage `json:"attrs,omitempty"`
}

// The streams of a log line.
const (
	StreamLog    = "log"    // tasks.Logger
	StreamStdout = "stdout" // a subprocess's standard output
	StreamStderr = "stderr" // a subprocess's standard error
)

// ProgressUpdate is the latest progress of a run's attempt.
type ProgressUpdate struct {
	Run      string
	Attempt  int
	Progress tasks.RunProgress
}
