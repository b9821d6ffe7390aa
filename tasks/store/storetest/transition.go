package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

func testLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRun(nil)
	create(t, s, r)
	at := t0.Add(time.Second)
	res := apply(t, s, store.Transition{Run: r.Name, From: []tasks.Phase{tasks.PhaseQueued}, To: tasks.PhaseWaitingForResources, At: at, WaitReason: "no A100 free"})
	require.True(t, res.Applied)
	require.Equal(t, "no A100 free", res.Run.WaitReason)
	require.Equal(t, int64(2), res.Event.Seq)

	res = apply(t, s, store.Transition{Run: r.Name, To: tasks.PhaseInitializing, At: at.Add(time.Second),
		Bind: &store.Binding{Node: "n1", Devices: []string{"0", "1"}}})
	require.True(t, res.Applied)
	require.Equal(t, 1, res.Run.Attempt)
	require.Equal(t, "n1", res.Run.Node)
	require.Equal(t, []string{"0", "1"}, res.Run.Devices)
	require.Empty(t, res.Run.WaitReason)

	res = apply(t, s, store.Transition{Run: r.Name, From: []tasks.Phase{tasks.PhaseInitializing}, Attempt: 1, To: tasks.PhaseRunning, At: at.Add(2 * time.Second)})
	require.True(t, res.Applied)
	require.Equal(t, at.Add(2*time.Second), *res.Run.StartedAt)

	res = apply(t, s, store.Transition{Run: r.Name, From: []tasks.Phase{tasks.PhaseRunning}, Attempt: 1, To: tasks.PhaseSucceeded,
		At: at.Add(3 * time.Second), Outputs: json.RawMessage(`{"ok":true}`)})
	require.True(t, res.Applied)
	require.Equal(t, tasks.Event{Seq: 5, Run: r.Name, Phase: tasks.PhaseSucceeded, At: at.Add(3 * time.Second)}, res.Event)

	got := get(t, s, r.Name)
	require.Equal(t, tasks.PhaseSucceeded, got.Phase)
	require.JSONEq(t, `{"ok":true}`, string(got.Outputs))
	require.Equal(t, at.Add(3*time.Second), *got.FinishedAt)
	require.Len(t, got.Attempts, 1)
	a := got.Attempts[0]
	require.Equal(t, 1, a.Number)
	require.Equal(t, "n1", a.Node)
	require.Equal(t, tasks.PhaseSucceeded, a.Phase)
	require.Equal(t, at.Add(time.Second), *a.StartedAt)
	require.Equal(t, at.Add(3*time.Second), *a.FinishedAt)

	evs, err := s.Events(ctx, r.Name, 2)
	require.NoError(t, err)
	require.Equal(t, []tasks.Phase{tasks.PhaseInitializing, tasks.PhaseRunning, tasks.PhaseSucceeded}, phases(evs))

	// A terminal run never changes, whatever From says.
	res = apply(t, s, store.Transition{Run: r.Name, To: tasks.PhaseQueued, At: at})
	require.False(t, res.Applied)
	_, err = s.Transition(ctx, []store.Transition{{Run: r.Name, From: []tasks.Phase{tasks.PhaseSucceeded}, To: tasks.PhaseFailed}})
	require.Error(t, err)
}

func testBindAndStart(t *testing.T, s store.Store) {
	r := newRun(func(r *store.NewRun) {
		r.Webhook = "https://example.com/hook"
		r.WebhookEvents = []string{store.WebhookStart}
	})
	create(t, s, r)
	res := apply(t, s, store.Transition{Run: r.Name, From: []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources},
		To: tasks.PhaseRunning, Start: true, At: t0, Bind: &store.Binding{Node: "n1", Devices: []string{"0"}}})
	require.True(t, res.Applied)
	require.Equal(t, []tasks.Event{
		{Seq: 2, Run: r.Name, Phase: tasks.PhaseInitializing, At: t0},
		{Seq: 3, Run: r.Name, Phase: tasks.PhaseRunning, At: t0},
	}, res.Events)
	got := get(t, s, r.Name)
	require.Equal(t, tasks.PhaseRunning, got.Phase)
	require.Equal(t, 1, got.Attempt)
	require.Equal(t, t0, *got.StartedAt)
	require.Equal(t, tasks.PhaseRunning, got.Attempts[0].Phase)
	ds, err := s.ListDeliveries(context.Background(), r.Name)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, store.WebhookStart, ds[0].Event)
	_, err = s.Transition(context.Background(), []store.Transition{{Run: r.Name, To: tasks.PhaseInitializing, Start: true, Bind: &store.Binding{Node: "n1"}}})
	require.Error(t, err, "Start needs To running")
}

func testConditionalTransitions(t *testing.T, s store.Store) {
	r := newRun(nil)
	create(t, s, r)
	apply(t, s, store.Transition{Run: r.Name, To: tasks.PhaseInitializing, At: t0, Bind: &store.Binding{Node: "n1"}})
	apply(t, s, store.Transition{Run: r.Name, Attempt: 1, To: tasks.PhaseRunning, At: t0})

	tests := []struct {
		name string
		tr   store.Transition
	}{
		{"wrong attempt", store.Transition{Run: r.Name, Attempt: 2, To: tasks.PhaseSucceeded}},
		{"wrong phase", store.Transition{Run: r.Name, From: []tasks.Phase{tasks.PhaseQueued}, To: tasks.PhaseSucceeded}},
		{"wrong node", store.Transition{Run: r.Name, Node: "n2", To: tasks.PhaseQueued}},
		{"unknown run", store.Transition{Run: "missing", To: tasks.PhaseSucceeded}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.tr.At = t0
			require.False(t, apply(t, s, tc.tr).Applied)
		})
	}

	// Two finishers race in one batch: only the first wins.
	res, err := s.Transition(context.Background(), []store.Transition{
		{Run: r.Name, Attempt: 1, From: []tasks.Phase{tasks.PhaseRunning}, To: tasks.PhaseSucceeded, At: t0, Outputs: json.RawMessage(`1`)},
		{Run: r.Name, Attempt: 1, From: []tasks.Phase{tasks.PhaseRunning}, To: tasks.PhaseSucceeded, At: t0, Outputs: json.RawMessage(`2`)},
	})
	require.NoError(t, err)
	require.True(t, res[0].Applied)
	require.False(t, res[1].Applied)
	require.Equal(t, json.RawMessage(`1`), get(t, s, r.Name).Outputs)
}

func testRetryAttempts(t *testing.T, s store.Store) {
	r := newRun(nil)
	create(t, s, r)
	apply(t, s, store.Transition{Run: r.Name, To: tasks.PhaseInitializing, At: t0, Bind: &store.Binding{Node: "n1"}})
	apply(t, s, store.Transition{Run: r.Name, Attempt: 1, To: tasks.PhaseRunning, At: t0})
	res := apply(t, s, store.Transition{Run: r.Name, Attempt: 1, To: tasks.PhaseQueued, At: t0.Add(time.Second),
		AttemptPhase: tasks.PhaseFailed, AttemptError: "boom", CountFailure: true, NotBefore: t0.Add(3 * time.Second)})
	require.True(t, res.Applied)
	require.Equal(t, 1, res.Run.Failures)
	require.Equal(t, t0.Add(3*time.Second), res.Run.NotBefore)
	require.Empty(t, res.Run.Node)
	require.Equal(t, "boom", res.Event.Error)

	apply(t, s, store.Transition{Run: r.Name, To: tasks.PhaseInitializing, At: t0.Add(4 * time.Second), Bind: &store.Binding{Node: "n2", Devices: []string{"3"}}})
	res = apply(t, s, store.Transition{Run: r.Name, Attempt: 2, To: tasks.PhaseTimedOut, At: t0.Add(5 * time.Second), Error: "attempt 2 timed out after 1s"})
	require.True(t, res.Applied)

	got := get(t, s, r.Name)
	require.Equal(t, tasks.PhaseTimedOut, got.Phase)
	require.Equal(t, "attempt 2 timed out after 1s", got.Error)
	require.Equal(t, 2, got.Attempt)
	require.Len(t, got.Attempts, 2)
	require.Equal(t, tasks.Attempt{Number: 1, Node: "n1", Phase: tasks.PhaseFailed, Error: "boom",
		StartedAt: &t0, FinishedAt: ptr(t0.Add(time.Second))}, got.Attempts[0])
	require.Equal(t, tasks.Attempt{Number: 2, Node: "n2", Devices: []string{"3"}, Phase: tasks.PhaseTimedOut,
		Error: "attempt 2 timed out after 1s", StartedAt: ptr(t0.Add(4 * time.Second)), FinishedAt: ptr(t0.Add(5 * time.Second))}, got.Attempts[1])
}

func testWaitReasonRefresh(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRun(nil)
	create(t, s, r)
	w := []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources}
	require.True(t, apply(t, s, store.Transition{Run: r.Name, From: w, To: tasks.PhaseWaitingForResources, At: t0, WaitReason: "a"}).Applied)
	res := apply(t, s, store.Transition{Run: r.Name, From: w, To: tasks.PhaseWaitingForResources, At: t0, WaitReason: "b"})
	require.True(t, res.Applied)
	require.Zero(t, res.Event.Seq, "a refresh records no event")
	require.Equal(t, "b", get(t, s, r.Name).WaitReason)
	evs, err := s.Events(ctx, r.Name, 0)
	require.NoError(t, err)
	require.Equal(t, []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources}, phases(evs))
}

func testAbort(t *testing.T, s store.Store) {
	ctx := context.Background()
	queued, running := newRun(nil), newRun(nil)
	create(t, s, queued, running)
	apply(t, s, store.Transition{Run: running.Name, To: tasks.PhaseInitializing, At: t0, Bind: &store.Binding{Node: "n1"}})

	res, err := s.RequestAbort(ctx, queued.Name, "changed my mind", t0)
	require.NoError(t, err)
	require.True(t, res.Terminal)
	require.Equal(t, tasks.PhaseAborted, res.Run.Phase)
	require.Equal(t, "changed my mind", res.Run.AbortReason)
	require.Equal(t, tasks.PhaseAborted, res.Event.Phase)

	res, err = s.RequestAbort(ctx, running.Name, "", t0)
	require.NoError(t, err)
	require.False(t, res.Terminal)
	got := get(t, s, running.Name)
	require.True(t, got.AbortRequested)
	require.Equal(t, tasks.PhaseInitializing, got.Phase)

	_, err = s.RequestAbort(ctx, queued.Name, "", t0)
	require.ErrorIs(t, err, store.ErrAlreadyDone)
	_, err = s.RequestAbort(ctx, "missing", "", t0)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// testUnstorableText: task errors, abort reasons and log lines may hold
// invalid UTF-8 and NUL bytes (a subprocess's output), which PostgreSQL's
// text refuses; they are stored with U+FFFD in their place, and do not
// fail the other changes of their batch.
func testUnstorableText(t *testing.T, s store.Store) {
	ctx := context.Background()
	const bad = "subprocess said: \xff\x00!"
	const want = "subprocess said: \uFFFD\uFFFD!"
	failing, fine, aborted := newRun(nil), newRun(nil), newRun(nil)
	create(t, s, failing, fine, aborted)
	var ts []store.Transition
	for _, r := range []store.NewRun{failing, fine} {
		ts = append(ts, store.Transition{Run: r.Name, To: tasks.PhaseRunning, Start: true, At: t0, Bind: &store.Binding{Node: "n1"}})
	}
	_, err := s.Transition(ctx, ts)
	require.NoError(t, err)
	res, err := s.Transition(ctx, []store.Transition{
		{Run: failing.Name, Attempt: 1, To: tasks.PhaseFailed, At: t0, Error: bad},
		{Run: fine.Name, Attempt: 1, To: tasks.PhaseSucceeded, At: t0, Outputs: json.RawMessage(`{}`)},
	})
	require.NoError(t, err, "a bad error text failed the batch")
	require.True(t, res[0].Applied)
	require.True(t, res[1].Applied)
	got := get(t, s, failing.Name)
	require.Equal(t, want, got.Error)
	require.Equal(t, want, got.Attempts[0].Error)
	require.Equal(t, want, res[0].Event.Error)
	require.Equal(t, tasks.PhaseSucceeded, get(t, s, fine.Name).Phase)

	ab, err := s.RequestAbort(ctx, aborted.Name, bad, t0)
	require.NoError(t, err)
	require.True(t, ab.Terminal)
	require.Equal(t, want, get(t, s, aborted.Name).AbortReason)

	require.NoError(t, s.AppendLogs(ctx, []store.LogLine{
		{Run: fine.Name, Attempt: 1, At: t0, Level: "INFO", Message: bad},
		{Run: fine.Name, Attempt: 1, At: t0, Level: "INFO", Message: "plain"},
	}))
	logs, err := s.Logs(ctx, fine.Name)
	require.NoError(t, err)
	require.Len(t, logs, 2)
	require.Equal(t, want, logs[0].Message)
	require.Equal(t, "plain", logs[1].Message)
}

// testInterruptions: a change with Interrupted flags the attempt it ends
// and counts an interruption on the run, never a failure, whether the run
// goes back to the queue or ends; changes that share everything else are
// batched without mixing the flag up.
func testInterruptions(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b, c, d := newRun(nil), newRun(nil), newRun(nil), newRun(nil)
	create(t, s, a, b, c, d)
	var binds []store.Transition
	for _, r := range []store.NewRun{a, b, c, d} {
		binds = append(binds, store.Transition{Run: r.Name, To: tasks.PhaseRunning, Start: true, At: t0, Bind: &store.Binding{Node: "n1"}})
	}
	_, err := s.Transition(ctx, binds)
	require.NoError(t, err)

	requeue := func(r store.NewRun, interrupted bool) store.Transition {
		return store.Transition{Run: r.Name, Attempt: 1, Node: "n1", To: tasks.PhaseQueued, At: t0.Add(time.Second),
			AttemptPhase: tasks.PhaseFailed, AttemptError: "node n1 restarted during attempt 1", Interrupted: interrupted}
	}
	failure := requeue(d, false)
	failure.CountFailure = true
	res, err := s.Transition(ctx, []store.Transition{
		requeue(a, true), requeue(b, true), failure,
		{Run: c.Name, Attempt: 1, To: tasks.PhaseFailed, At: t0.Add(time.Second), Interrupted: true,
			Error: "node n1 restarted during attempt 1; interrupted 1 times, MaxInterruptions is 0"},
	})
	require.NoError(t, err)
	for i := range res {
		require.True(t, res[i].Applied, i)
	}
	for _, r := range []store.NewRun{a, b} {
		got := get(t, s, r.Name)
		require.Equal(t, tasks.PhaseQueued, got.Phase)
		require.Equal(t, 1, got.Interruptions)
		require.Zero(t, got.Failures, "an interruption is not a failure")
		require.Equal(t, tasks.Attempt{Number: 1, Node: "n1", Phase: tasks.PhaseFailed, Error: "node n1 restarted during attempt 1",
			Interrupted: true, StartedAt: &t0, FinishedAt: ptr(t0.Add(time.Second))}, got.Attempts[0])
	}
	got := get(t, s, c.Name)
	require.Equal(t, tasks.PhaseFailed, got.Phase)
	require.Equal(t, 1, got.Interruptions)
	require.True(t, got.Attempts[0].Interrupted)
	got = get(t, s, d.Name)
	require.Equal(t, 1, got.Failures)
	require.Zero(t, got.Interruptions)
	require.False(t, got.Attempts[0].Interrupted)

	// The next attempt of a starts unflagged, and its own end is its own.
	apply(t, s, store.Transition{Run: a.Name, To: tasks.PhaseRunning, Start: true, At: t0.Add(2 * time.Second), Bind: &store.Binding{Node: "n2"}})
	apply(t, s, store.Transition{Run: a.Name, Attempt: 2, To: tasks.PhaseSucceeded, At: t0.Add(3 * time.Second), Outputs: json.RawMessage(`{}`)})
	got = get(t, s, a.Name)
	require.Equal(t, 1, got.Interruptions)
	require.Len(t, got.Attempts, 2)
	require.True(t, got.Attempts[0].Interrupted)
	require.False(t, got.Attempts[1].Interrupted)
	require.Equal(t, tasks.PhaseSucceeded, got.Attempts[1].Phase)
	runs, err := s.ListRuns(ctx, store.RunFilter{Phases: []tasks.Phase{tasks.PhaseQueued}})
	require.NoError(t, err)
	counts := map[string]int{}
	for _, r := range runs {
		counts[r.Name] = r.Interruptions
	}
	require.Equal(t, map[string]int{b.Name: 1, d.Name: 0}, counts, "lists read the count too")
}
