package dispatch

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// TestDecide is the table of what an attempt's end does to its run.
func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	policy := tasks.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 2}
	lim := limits{retry: policy, maxInterruptions: 10, timeout: time.Minute, maxOutputBytes: 8}
	run := func(failures, interruptions int) *store.StoredRun {
		return &store.StoredRun{Run: tasks.Run{Attempt: failures + interruptions + 1}, Failures: failures, Interruptions: interruptions}
	}
	abortAsked := run(0, 0)
	abortAsked.AbortRequested, abortAsked.AbortReason = true, "user asked"
	lost := ending{kind: endLost, why: "node n restarted during attempt 3"}
	drained := ending{kind: endDrained, why: "node n shut down during attempt 3"}

	tests := []struct {
		name string
		run  *store.StoredRun
		end  ending
		lim  limits
		want store.Transition
	}{
		{"success", run(0, 0), ending{outputs: json.RawMessage(`{"a":1}`)}, lim,
			store.Transition{To: tasks.PhaseSucceeded, Outputs: json.RawMessage(`{"a":1}`)}},
		{"success after interruptions and failures", run(2, 10), ending{outputs: json.RawMessage(`{}`)}, lim,
			store.Transition{To: tasks.PhaseSucceeded, Outputs: json.RawMessage(`{}`)}},
		{"outputs over the limit", run(0, 0), ending{outputs: json.RawMessage(`"123456789"`)}, lim,
			store.Transition{To: tasks.PhaseFailed, Error: "outputs are 11 bytes, over the limit of 8 bytes"}},
		{"first failure retries after the backoff", run(0, 0), ending{err: errors.New("boom")}, lim,
			store.Transition{To: tasks.PhaseQueued, AttemptPhase: tasks.PhaseFailed, AttemptError: "boom", CountFailure: true,
				NotBefore: now.Add(time.Second)}},
		{"second failure backs off longer", run(1, 0), ending{err: errors.New("boom")}, lim,
			store.Transition{To: tasks.PhaseQueued, AttemptPhase: tasks.PhaseFailed, AttemptError: "boom", CountFailure: true,
				NotBefore: now.Add(2 * time.Second)}},
		{"last failure fails the run", run(2, 0), ending{err: errors.New("boom")}, lim,
			store.Transition{To: tasks.PhaseFailed, Error: "boom"}},
		{"interruptions leave the retries whole", run(0, 7), ending{err: errors.New("boom")}, lim,
			store.Transition{To: tasks.PhaseQueued, AttemptPhase: tasks.PhaseFailed, AttemptError: "boom", CountFailure: true,
				NotBefore: now.Add(time.Second)}},
		{"permanent error", run(0, 0), ending{err: tasks.Permanent(errors.New("bad input"))}, lim,
			store.Transition{To: tasks.PhaseFailed, Error: "bad input"}},
		{"retry after spends nothing", run(2, 0), ending{err: tasks.RetryAfter(5 * time.Second)}, lim,
			store.Transition{To: tasks.PhaseQueued, AttemptPhase: tasks.PhaseFailed, AttemptError: "retry after 5s",
				NotBefore: now.Add(5 * time.Second)}},
		{"timeout retries", run(0, 0), ending{kind: endTimedOut}, lim,
			store.Transition{To: tasks.PhaseQueued, AttemptPhase: tasks.PhaseTimedOut, AttemptError: "attempt 1 timed out after 1m0s",
				CountFailure: true, NotBefore: now.Add(time.Second)}},
		{"last timeout ends timed out", run(2, 0), ending{kind: endTimedOut}, lim,
			store.Transition{To: tasks.PhaseTimedOut, Error: "attempt 3 timed out after 1m0s"}},
		{"abort", run(0, 0), ending{kind: endAborted, why: "stop"}, lim,
			store.Transition{To: tasks.PhaseAborted, Error: "aborted: stop"}},
		{"abort without reason", run(0, 0), ending{kind: endAborted}, lim,
			store.Transition{To: tasks.PhaseAborted, Error: "aborted: abort requested"}},
		{"lost node requeues at once without a failure", run(2, 0), lost, lim,
			store.Transition{To: tasks.PhaseQueued, AttemptPhase: tasks.PhaseFailed, AttemptError: lost.why, Interrupted: true}},
		{"drain requeues, the attempt aborted", run(2, 3), drained, lim,
			store.Transition{To: tasks.PhaseQueued, AttemptPhase: tasks.PhaseAborted, AttemptError: drained.why, Interrupted: true}},
		{"the last interruption within the budget requeues", run(0, 9), lost, lim,
			store.Transition{To: tasks.PhaseQueued, AttemptPhase: tasks.PhaseFailed, AttemptError: lost.why, Interrupted: true}},
		{"past the budget the run fails and says why", run(0, 10), lost, lim,
			store.Transition{To: tasks.PhaseFailed, AttemptPhase: tasks.PhaseFailed, AttemptError: lost.why, Interrupted: true,
				Error: "node n restarted during attempt 3; interrupted 11 times (node restarts, losses or drains); MaxInterruptions is 10"}},
		{"no budget: the first interruption fails", run(0, 0), drained, limits{retry: policy},
			store.Transition{To: tasks.PhaseFailed, AttemptPhase: tasks.PhaseAborted, AttemptError: drained.why, Interrupted: true,
				Error: "node n shut down during attempt 3; interrupted 1 times (node restarts, losses or drains); MaxInterruptions is 0"}},
		{"an interrupted run asked to abort is aborted", abortAsked, lost, lim,
			store.Transition{To: tasks.PhaseAborted, Error: "aborted: user asked", Interrupted: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, decide(tc.run, tc.end, tc.lim, now, 0.5))
		})
	}
}

// TestLimits: a task's MaxInterruptions overrides the dispatcher's
// default; negative means none.
func TestLimits(t *testing.T) {
	t.Parallel()
	c := caps{maxInterruptions: 10, maxOutputBytes: 100}
	def := func(n int) *tasks.Definition {
		return &tasks.Definition{Retry: tasks.NoRetry, Timeout: time.Second, MaxInterruptions: n}
	}
	require.Equal(t, limits{retry: tasks.DefaultRetryPolicy, maxInterruptions: 10, maxOutputBytes: 100}, c.limits(nil))
	require.Equal(t, 10, c.limits(def(0)).maxInterruptions)
	require.Equal(t, 3, c.limits(def(3)).maxInterruptions)
	require.Equal(t, 0, c.limits(def(-1)).maxInterruptions)
	c.maxInterruptions = -1
	require.Equal(t, 0, c.limits(def(0)).maxInterruptions)
	require.Equal(t, tasks.NoRetry, c.limits(def(0)).retry)
}
