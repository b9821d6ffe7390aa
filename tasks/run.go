package tasks

import (
	"encoding/json"
	"time"
)

// Run is one execution request of a task, as the dispatcher and the store see
// it. Raw credentials never appear here: Owner is the verified subject only.
type Run struct {
	Name    string `json:"name"`
	Project string `json:"project"`
	Domain  string `json:"domain"`
	Task    string `json:"task"`
	Version string `json:"version"`
	// Owner is the subject of the identity that submitted the run.
	Owner    string `json:"owner"`
	Phase    Phase  `json:"phase"`
	Priority int    `json:"priority"`

	Inputs  json.RawMessage `json:"inputs,omitempty"`
	Outputs json.RawMessage `json:"outputs,omitempty"`
	Error   string          `json:"error,omitempty"`

	// Attempt is the number of the current (or last) attempt, from 1.
	Attempt  int       `json:"attempt"`
	Attempts []Attempt `json:"attempts,omitempty"`
	Node     string    `json:"node,omitempty"`
	Devices  []string  `json:"devices,omitempty"`

	// Webhook is the callback URL given at submit, if any.
	Webhook       string   `json:"webhook,omitempty"`
	WebhookEvents []string `json:"webhook_events,omitempty"`

	AbortReason string `json:"abort_reason,omitempty"`

	// Progress is the latest progress the task reported with
	// tasks.Progress; nil until it reports.
	Progress *RunProgress `json:"progress,omitempty"`

	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// Done reports whether the run reached a terminal phase.
func (r *Run) Done() bool { return r.Phase.Terminal() }

// RunProgress is a run's latest progress report and when it was made.
type RunProgress struct {
	ProgressReport
	UpdatedAt time.Time `json:"updated_at"`
}

// Attempt records one try of a run on a node.
type Attempt struct {
	Number  int      `json:"number"`
	Node    string   `json:"node,omitempty"`
	Devices []string `json:"devices,omitempty"`
	Phase   Phase    `json:"phase"`
	Error   string   `json:"error,omitempty"`
	// Interrupted is set when the attempt ended by an interruption of the
	// platform (its node restarted, was lost or drained), not by the task:
	// it counts against MaxInterruptions, never the retry policy.
	Interrupted bool       `json:"interrupted,omitempty" doc:"Set when the platform (a node's restart, loss or drain) ended the attempt, not the task: it spends the run's interruption budget, not its retries."`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
}

// Event is one change of a run, as the SSE stream and Prefer: wait see it.
// Seq grows per run, so a client can resume after the last event it saw.
type Event struct {
	Seq   int64     `json:"seq"`
	Run   string    `json:"run"`
	Phase Phase     `json:"phase"`
	At    time.Time `json:"at"`
	Error string    `json:"error,omitempty"`
}
