package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// testBatchTransitions sends one batch mixing phase-only changes of many
// runs (which an implementation may group), one whose run is no longer in
// From, one with its own reason, and two changes of the same run in order:
// each result, event and run must be as if applied one by one.
func testBatchTransitions(t *testing.T, s store.Store) {
	ctx := context.Background()
	var names []string
	for range 20 {
		r := newRun(nil)
		create(t, s, r)
		names = append(names, r.Name)
	}
	// names[18] leaves queued first: the batch must not move it.
	require.True(t, apply(t, s, store.Transition{Run: names[18], From: []tasks.Phase{tasks.PhaseQueued}, To: tasks.PhaseInitializing,
		At: t0, Bind: &store.Binding{Node: "n1"}}).Applied)
	queued := []tasks.Phase{tasks.PhaseQueued}
	at := t0.Add(time.Second)
	var ts []store.Transition
	for _, n := range names[:17] {
		ts = append(ts, store.Transition{Run: n, From: queued, To: tasks.PhaseWaitingForResources, At: at, WaitReason: "no free A100"})
	}
	ts = append(ts,
		store.Transition{Run: names[17], From: queued, To: tasks.PhaseWaitingForResources, At: at, WaitReason: "other"},
		store.Transition{Run: names[18], From: queued, To: tasks.PhaseWaitingForResources, At: at, WaitReason: "no free A100"},
		store.Transition{Run: names[19], From: queued, To: tasks.PhaseWaitingForResources, At: at, WaitReason: "no free A100"},
		store.Transition{Run: names[19], From: []tasks.Phase{tasks.PhaseWaitingForResources}, To: tasks.PhaseInitializing, At: at,
			Bind: &store.Binding{Node: "n1", Devices: []string{"A100:0"}}},
	)
	res, err := s.Transition(ctx, ts)
	require.NoError(t, err)
	require.Len(t, res, len(ts))
	for i, tr := range ts {
		r := res[i]
		if tr.Run == names[18] {
			require.False(t, r.Applied, "run left queued before the batch")
			continue
		}
		require.True(t, r.Applied, i)
		require.Equal(t, tr.Run, r.Run.Name)
		require.Equal(t, tr.To, r.Run.Phase)
		require.Equal(t, tr.To, r.Event.Phase)
		require.True(t, r.Event.At.Equal(at))
		require.Equal(t, r.Run.EventSeq, r.Event.Seq)
		require.Equal(t, []tasks.Event{r.Event}, r.Events)
	}
	for i, n := range names[:18] {
		got := get(t, s, n)
		require.Equal(t, tasks.PhaseWaitingForResources, got.Phase, i)
		require.Equal(t, int64(2), got.EventSeq)
		want := "no free A100"
		if i == 17 {
			want = "other"
		}
		require.Equal(t, want, got.WaitReason)
		evs, err := s.Events(ctx, n, 0)
		require.NoError(t, err)
		require.Equal(t, []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources}, phases(evs))
		require.Equal(t, int64(2), evs[1].Seq)
	}
	last := get(t, s, names[19])
	require.Equal(t, tasks.PhaseInitializing, last.Phase)
	require.Equal(t, 1, last.Attempt)
	evs, err := s.Events(ctx, names[19], 0)
	require.NoError(t, err)
	require.Equal(t, []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources, tasks.PhaseInitializing}, phases(evs))
	require.Equal(t, tasks.PhaseInitializing, get(t, s, names[18]).Phase)

	// One batch that starts runs and, for one of them, finishes the attempt
	// it just started and then refreshes a finished neighbour's wait: rows
	// appended earlier in a batch are visible to later changes of it.
	a, c := newRun(nil), newRun(nil)
	create(t, s, a, c)
	bind := func(name string) store.Transition {
		return store.Transition{Run: name, From: []tasks.Phase{tasks.PhaseQueued}, To: tasks.PhaseRunning, At: at,
			Bind: &store.Binding{Node: "n1", Devices: []string{"A100:0"}}, Start: true}
	}
	w := []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources}
	res, err = s.Transition(ctx, []store.Transition{
		bind(a.Name),
		{Run: a.Name, From: []tasks.Phase{tasks.PhaseRunning}, Attempt: 1, To: tasks.PhaseSucceeded, At: at.Add(time.Second),
			Outputs: json.RawMessage(`{"ok":true}`)},
		{Run: c.Name, From: w, To: tasks.PhaseWaitingForResources, At: at, WaitReason: "x"},
		{Run: c.Name, From: w, To: tasks.PhaseWaitingForResources, At: at, WaitReason: "y"},
	})
	require.NoError(t, err)
	require.True(t, res[0].Applied)
	require.Equal(t, []tasks.Phase{tasks.PhaseInitializing, tasks.PhaseRunning}, phases(res[0].Events))
	require.True(t, res[1].Applied)
	require.True(t, res[3].Applied)
	require.Zero(t, res[3].Event.Seq, "the second wait of c is a refresh")
	got, err := s.GetRun(ctx, a.Name)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseSucceeded, got.Phase)
	require.Len(t, got.Attempts, 1)
	require.Equal(t, tasks.PhaseSucceeded, got.Attempts[0].Phase, "the attempt started in the batch was closed in it")
	require.NotNil(t, got.Attempts[0].FinishedAt)
	evs, err = s.Events(ctx, a.Name, 0)
	require.NoError(t, err)
	require.Equal(t, []tasks.Phase{tasks.PhaseQueued, tasks.PhaseInitializing, tasks.PhaseRunning, tasks.PhaseSucceeded}, phases(evs))
	evs, err = s.Events(ctx, c.Name, 0)
	require.NoError(t, err)
	require.Equal(t, []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources}, phases(evs))
	require.Equal(t, "y", get(t, s, c.Name).WaitReason)

	// A scheduling round: many runs bound and started on one node without
	// devices (changes that differ only by run), one with a device, one
	// aborted meanwhile (no longer queued).
	var round []string
	for range 12 {
		r := newRun(nil)
		create(t, s, r)
		round = append(round, r.Name)
	}
	_, err = s.RequestAbort(ctx, round[5], "gone", at)
	require.NoError(t, err)
	var binds []store.Transition
	for i, n := range round {
		b := bind(n)
		if i == 7 {
			b.Bind = &store.Binding{Node: "n1", Devices: []string{"A100:1"}}
		} else {
			b.Bind = &store.Binding{Node: "n2"}
		}
		binds = append(binds, b)
	}
	res, err = s.Transition(ctx, binds)
	require.NoError(t, err)
	for i, n := range round {
		if i == 5 {
			require.False(t, res[i].Applied)
			continue
		}
		require.True(t, res[i].Applied, i)
		require.Equal(t, n, res[i].Run.Name)
		require.Equal(t, []tasks.Phase{tasks.PhaseInitializing, tasks.PhaseRunning}, phases(res[i].Events))
		got, err := s.GetRun(ctx, n)
		require.NoError(t, err)
		require.Equal(t, tasks.PhaseRunning, got.Phase)
		require.Equal(t, 1, got.Attempt)
		require.Len(t, got.Attempts, 1)
		wantNode := "n2"
		if i == 7 {
			wantNode = "n1"
			require.Equal(t, []string{"A100:1"}, got.Devices)
		}
		require.Equal(t, wantNode, got.Node)
		require.Equal(t, wantNode, got.Attempts[0].Node)
		evs, err := s.Events(ctx, n, 0)
		require.NoError(t, err)
		require.Equal(t, []tasks.Phase{tasks.PhaseQueued, tasks.PhaseInitializing, tasks.PhaseRunning}, phases(evs))
	}
}

// testBatchFinishes commits, in one batch, changes that share everything
// but the run, the time and the outputs (what the node agent's writer
// sends as functions return): each run must get its own outputs and
// times, in the run, its attempt and its event, across more runs than one
// statement takes.
func testBatchFinishes(t *testing.T, s store.Store) {
	ctx := context.Background()
	const (
		nOK     = 40 // succeed, each with its own outputs
		nFailed = 5  // fail
		nInit   = 4  // initializing, then running
	)
	var names []string
	for range nOK + nFailed + nInit + 1 {
		r := newRun(nil)
		create(t, s, r)
		names = append(names, r.Name)
	}
	var binds []store.Transition
	for i, n := range names {
		b := store.Transition{Run: n, From: []tasks.Phase{tasks.PhaseQueued}, To: tasks.PhaseRunning, Start: true, At: t0,
			Bind: &store.Binding{Node: "n1"}}
		if i >= nOK+nFailed {
			b.To, b.Start = tasks.PhaseInitializing, false
		}
		binds = append(binds, b)
	}
	res, err := s.Transition(ctx, binds)
	require.NoError(t, err)
	for i := range res {
		require.True(t, res[i].Applied, i)
	}

	// want is what each change must leave: its own times and outputs.
	type want struct {
		phase             tasks.Phase
		started, finished *time.Time
		outputs, errText  string
		attemptFinished   *time.Time
		applied           bool
	}
	var ts []store.Transition
	var wants []want
	for i, n := range names {
		at := t0.Add(time.Duration(i+1) * time.Millisecond)
		tr := store.Transition{Run: n, Attempt: 1, Node: "n1", At: at, From: []tasks.Phase{tasks.PhaseRunning}}
		w := want{phase: tasks.PhaseSucceeded, started: ptr(t0), finished: ptr(at), attemptFinished: ptr(at), applied: true}
		switch {
		case i < nOK:
			tr.To, tr.Outputs = tasks.PhaseSucceeded, json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
			w.outputs = string(tr.Outputs)
		case i < nOK+nFailed:
			tr.To, tr.Error = tasks.PhaseFailed, "boom"
			w.phase, w.errText = tasks.PhaseFailed, "boom"
		case i < nOK+nFailed+nInit:
			tr.From, tr.To = []tasks.Phase{tasks.PhaseInitializing}, tasks.PhaseRunning
			w = want{phase: tasks.PhaseRunning, started: ptr(at), applied: true}
		default: // a change for another attempt: nothing moves
			tr.From, tr.To, tr.Attempt = []tasks.Phase{tasks.PhaseInitializing}, tasks.PhaseRunning, 2
			w = want{phase: tasks.PhaseInitializing}
		}
		ts = append(ts, tr)
		wants = append(wants, w)
	}
	res, err = s.Transition(ctx, ts)
	require.NoError(t, err)
	require.Len(t, res, len(ts))
	for i, n := range names {
		w := wants[i]
		require.Equal(t, w.applied, res[i].Applied, "run %d", i)
		got, err := s.GetRun(ctx, n)
		require.NoError(t, err)
		require.Len(t, got.Attempts, 1)
		a := got.Attempts[0]
		require.Equal(t, w.phase, got.Phase, "run %d", i)
		require.Equal(t, w.phase, a.Phase, "run %d: attempt", i)
		require.Equal(t, w.started, got.StartedAt, "run %d: started", i)
		require.Equal(t, w.finished, got.FinishedAt, "run %d: finished", i)
		require.Equal(t, w.attemptFinished, a.FinishedAt, "run %d: attempt finished", i)
		require.Equal(t, w.outputs, string(got.Outputs), "run %d: outputs", i)
		require.Equal(t, w.errText, got.Error, "run %d: error", i)
		require.Equal(t, w.errText, a.Error, "run %d: attempt error", i)
		evs, err := s.Events(ctx, n, 0)
		require.NoError(t, err)
		last := evs[len(evs)-1]
		require.Equal(t, w.phase, last.Phase, "run %d: last event", i)
		var wantEvent tasks.Event // none for a change not applied
		if w.applied {
			wantEvent = last
		}
		require.Equal(t, wantEvent, res[i].Event, "run %d: the result's event", i)
	}
}
