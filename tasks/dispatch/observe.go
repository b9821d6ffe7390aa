package dispatch

import (
	"slices"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// Observer hears what the dispatcher does, for metrics: framework wires
// one to Prometheus (internal/telemetry), so that this package never
// imports it. Every task label is a task's ID ("project/domain/name"),
// bounded by the registry; no method ever gets a run's name. Methods are
// called from the dispatcher's loops and must return quickly.
//
// What is better read when asked (queue depth, GPUs, nodes, leadership)
// is not pushed here: Queue and Nodes answer it at scrape time.
type Observer interface {
	// RunSubmitted: a new run of task was committed (not an idempotent
	// repeat).
	RunSubmitted(task string)
	// RunStarted: the run's first attempt began running, queued after its
	// submit.
	RunStarted(task string, queued time.Duration)
	// AttemptEnded: an attempt of task ended with outcome.
	AttemptEnded(task string, outcome AttemptOutcome)
	// RunFinished: the run ended in phase, d after its submit.
	RunFinished(task string, phase tasks.Phase, d time.Duration)
	// Placed: a scheduling round bound n runs and took d, its commit
	// included.
	Placed(d time.Duration, n int)
	// Committed: writer ("submit" or "transitions") committed n changes
	// in one transaction that took d.
	Committed(writer string, n int, d time.Duration)
}

// AttemptOutcome is how an attempt ended, as Observer.AttemptEnded hears
// it.
type AttemptOutcome string

// Outcomes of an attempt.
const (
	// AttemptSucceeded: the run succeeded.
	AttemptSucceeded AttemptOutcome = "succeeded"
	// AttemptFailed: the run ended failed or timed out with it.
	AttemptFailed AttemptOutcome = "failed"
	// AttemptRetried: it failed (or asked to be retried) and the run went
	// back to the queue.
	AttemptRetried AttemptOutcome = "retried"
	// AttemptInterrupted: the platform ended it (its node restarted, was
	// lost or drained).
	AttemptInterrupted AttemptOutcome = "interrupted"
	// AttemptAborted: the run was aborted while it ran.
	AttemptAborted AttemptOutcome = "aborted"
)

// nopObserver is Config.Observer's default.
type nopObserver struct{}

func (nopObserver) RunSubmitted(string)                            {}
func (nopObserver) RunStarted(string, time.Duration)               {}
func (nopObserver) AttemptEnded(string, AttemptOutcome)            {}
func (nopObserver) RunFinished(string, tasks.Phase, time.Duration) {}
func (nopObserver) Placed(time.Duration, int)                      {}
func (nopObserver) Committed(string, int, time.Duration)           {}

func taskID(r *tasks.Run) string { return r.Project + "/" + r.Domain + "/" + r.Task }

// observeTransitions tells o what the committed changes ts (with their
// results res) did to runs: every phase change goes through the
// transition writer, so this one place sees every start and end.
func observeTransitions(o Observer, ts []store.Transition, res []store.TransitionResult) {
	for i, t := range ts {
		r := res[i]
		if !r.Applied || r.Run == nil {
			continue
		}
		task := taskID(&r.Run.Run)
		if t.To == tasks.PhaseRunning && r.Run.Attempt == 1 && !slices.Contains(t.From, tasks.PhaseRunning) {
			o.RunStarted(task, t.At.Sub(r.Run.CreatedAt))
		}
		if endsAttempt(t) {
			o.AttemptEnded(task, attemptOutcome(t))
		}
		if t.To.Terminal() {
			o.RunFinished(task, t.To, t.At.Sub(r.Run.CreatedAt))
		}
	}
}

// endsAttempt reports whether t ends an attempt that had started.
func endsAttempt(t store.Transition) bool {
	if t.To == tasks.PhaseRunning || t.To == tasks.PhaseInitializing || t.To == tasks.PhaseWaitingForResources {
		return false
	}
	return slices.Contains(t.From, tasks.PhaseRunning) || slices.Contains(t.From, tasks.PhaseInitializing)
}

func attemptOutcome(t store.Transition) AttemptOutcome {
	switch {
	case t.Interrupted:
		return AttemptInterrupted
	case t.To == tasks.PhaseQueued:
		return AttemptRetried
	case t.To == tasks.PhaseSucceeded:
		return AttemptSucceeded
	case t.To == tasks.PhaseAborted:
		return AttemptAborted
	}
	return AttemptFailed
}
