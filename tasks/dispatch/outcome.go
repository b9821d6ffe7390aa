package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// endKind says how an attempt ended.
type endKind int

const (
	// endReturned: the function returned its outputs or an error.
	endReturned endKind = iota
	// endTimedOut: the attempt ran past its task's Timeout.
	endTimedOut
	// endAborted: the run was asked to abort.
	endAborted
	// endLost: the attempt's node restarted or stopped heartbeating; how
	// the attempt ended is unknown (its outcome no longer counts).
	endLost
	// endDrained: the attempt's node cancelled it to shut down.
	endDrained
)

// interruption reports whether the platform, not the task, ended the
// attempt: such an end spends the run's MaxInterruptions, never its retry
// policy.
func (k endKind) interruption() bool { return k == endLost || k == endDrained }

// ending is how one attempt ended.
type ending struct {
	kind endKind
	// outputs and err are what the function returned (endReturned).
	outputs json.RawMessage
	err     error
	// why is what interrupted the attempt (endLost, endDrained) or the
	// abort's reason (endAborted).
	why string
}

// limits bound a run's attempts: its task's policies and the
// dispatcher's caps.
type limits struct {
	retry tasks.RetryPolicy
	// maxInterruptions is how many interruptions are requeued; the next
	// one fails the run.
	maxInterruptions int
	timeout          time.Duration
	maxOutputBytes   int
}

// caps are the dispatcher's bounds on every run's attempts
// (Config.MaxInterruptions, Config.MaxOutputBytes), which a task's own
// options override.
type caps struct {
	maxInterruptions, maxOutputBytes int
}

// limits are the bounds of def's runs; def may be nil (a task this
// process does not know).
func (c caps) limits(def *tasks.Definition) limits {
	l := limits{retry: tasks.DefaultRetryPolicy, maxInterruptions: c.maxInterruptions, maxOutputBytes: c.maxOutputBytes}
	if def != nil {
		l.retry, l.timeout = def.Retry, def.Timeout
		if def.MaxInterruptions != 0 {
			l.maxInterruptions = def.MaxInterruptions
		}
	}
	l.maxInterruptions = max(l.maxInterruptions, 0) // negative: none
	return l
}

// decide is the one place that says what the end of run r's current
// attempt does to the run: it succeeds, is retried after a backoff, is
// requeued at once as an interruption, or ends failed, timed_out or
// aborted. It fills the outcome's fields of a Transition (To, Error,
// Outputs, AttemptPhase, AttemptError, NotBefore, CountFailure,
// Interrupted); the caller says which run, attempt and phases it applies
// to. u is a uniform random number in [0, 1) for the backoff's jitter.
//
// The task's failures (errors, timeouts) spend its retry policy;
// interruptions of the platform (a node's restart, loss or drain) spend
// MaxInterruptions instead, which is what stops a task that kills its
// node from looping for ever.
func decide(r *store.StoredRun, e ending, l limits, now time.Time, u float64) store.Transition {
	var t store.Transition
	failure := func(phase tasks.Phase, msg string) store.Transition {
		failures := r.Failures + 1
		if failures >= l.retry.MaxAttempts {
			t.To, t.Error = phase, msg
			return t
		}
		t.To, t.AttemptPhase, t.AttemptError, t.CountFailure = tasks.PhaseQueued, phase, msg, true
		t.NotBefore = now.Add(l.retry.Backoff(failures, u))
		return t
	}
	var retryAfter *tasks.RetryAfterError
	var permanent *tasks.PermanentError
	switch {
	case e.kind.interruption():
		t.Interrupted = true
		attemptPhase := tasks.PhaseFailed
		if e.kind == endDrained {
			attemptPhase = tasks.PhaseAborted
		}
		if n := r.Interruptions + 1; r.AbortRequested {
			t.To, t.Error = tasks.PhaseAborted, "aborted: "+nonEmpty(r.AbortReason, "abort requested")
		} else if n > l.maxInterruptions {
			t.To, t.AttemptPhase, t.AttemptError = tasks.PhaseFailed, attemptPhase, e.why
			t.Error = fmt.Sprintf("%s; interrupted %d times (node restarts, losses or drains); MaxInterruptions is %d",
				e.why, n, l.maxInterruptions)
		} else {
			t.To, t.AttemptPhase, t.AttemptError = tasks.PhaseQueued, attemptPhase, e.why
		}
	case e.kind == endAborted:
		t.To, t.Error = tasks.PhaseAborted, "aborted: "+nonEmpty(e.why, "abort requested")
	case e.kind == endTimedOut:
		return failure(tasks.PhaseTimedOut, fmt.Sprintf("attempt %d timed out after %s", r.Attempt, l.timeout))
	case e.err == nil && len(e.outputs) > l.maxOutputBytes:
		t.To, t.Error = tasks.PhaseFailed, fmt.Sprintf("outputs are %d bytes, over the limit of %d bytes", len(e.outputs), l.maxOutputBytes)
	case e.err == nil:
		t.To, t.Outputs = tasks.PhaseSucceeded, e.outputs
	case errors.As(e.err, &retryAfter):
		t.To, t.AttemptPhase, t.AttemptError = tasks.PhaseQueued, tasks.PhaseFailed, e.err.Error()
		t.NotBefore = now.Add(retryAfter.Delay)
	case errors.As(e.err, &permanent):
		t.To, t.Error = tasks.PhaseFailed, e.err.Error()
	default:
		return failure(tasks.PhaseFailed, e.err.Error())
	}
	return t
}

// interruptTransition ends the current attempt of r, whose node restarted
// or stopped heartbeating, as an interruption: back to the queue as a new
// attempt without spending the retry policy, or failed past
// MaxInterruptions, or aborted when asked to (decide). lim are the bounds
// of r's task.
func interruptTransition(r *store.StoredRun, lim limits, now time.Time, why string) store.Transition {
	t := decide(r, ending{kind: endLost, why: why}, lim, now, rand.Float64())
	t.Run, t.Attempt, t.Node, t.At = r.Name, r.Attempt, r.Node, now
	t.From = []tasks.Phase{tasks.PhaseInitializing, tasks.PhaseRunning}
	return t
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
