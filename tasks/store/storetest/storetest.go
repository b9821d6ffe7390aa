// Package storetest is the conformance suite every store.Store passes:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
//	}
//
// open must return an empty store for each call; Run closes it.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// Run runs the conformance suite; open returns a fresh, empty store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"Idempotency", testIdempotency},
		{"IdempotencyConcurrent", testIdempotencyConcurrent},
		{"Lifecycle", testLifecycle},
		{"ConditionalTransitions", testConditionalTransitions},
		{"BindAndStart", testBindAndStart},
		{"RetryAttempts", testRetryAttempts},
		{"WaitReasonRefresh", testWaitReasonRefresh},
		{"BatchTransitions", testBatchTransitions},
		{"BatchFinishes", testBatchFinishes},
		{"Abort", testAbort},
		{"ListRuns", testListRuns},
		{"ActiveAndQueued", testActiveAndQueued},
		{"Logs", testLogs},
		{"Nodes", testNodes},
		{"Lease", testLease},
		{"WebhookOutbox", testWebhookOutbox},
		{"DeliveryOrder", testDeliveryOrder},
		{"Purge", testPurge},
		{"DeleteRuns", testDeleteRuns},
		{"UnstorableText", testUnstorableText},
		{"Interruptions", testInterruptions},
		{"Ping", testPing},
		{"Listen", testListen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

// t0 is a fixed instant with nanoseconds, to catch lost precision.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

var nameSeq struct {
	sync.Mutex
	n int
}

func newRun(mod func(*store.NewRun)) store.NewRun {
	nameSeq.Lock()
	nameSeq.n++
	n := nameSeq.n
	nameSeq.Unlock()
	r := store.NewRun{
		Name: fmt.Sprintf("r%06d%d", n, time.Now().UnixNano()%1000000), Project: "demo", Domain: "development", Task: "echo",
		Version: "v1", Caller: store.Caller{Subject: "alice", Name: "Alice", Email: "a@example.com", Groups: []string{"admins"}},
		Priority: 3, Inputs: json.RawMessage(`{"message":"hi"}`), CreatedAt: t0,
	}
	if mod != nil {
		mod(&r)
	}
	return r
}

func create(t *testing.T, s store.Store, runs ...store.NewRun) []store.CreateResult {
	t.Helper()
	res, err := s.CreateRuns(context.Background(), runs)
	require.NoError(t, err)
	require.Len(t, res, len(runs))
	return res
}

func apply(t *testing.T, s store.Store, tr store.Transition) store.TransitionResult {
	t.Helper()
	res, err := s.Transition(context.Background(), []store.Transition{tr})
	require.NoError(t, err)
	return res[0]
}

func get(t *testing.T, s store.Store, name string) *store.StoredRun {
	t.Helper()
	r, err := s.GetRun(context.Background(), name)
	require.NoError(t, err)
	return r
}

func phases(evs []tasks.Event) []tasks.Phase {
	out := make([]tasks.Phase, len(evs))
	for i, e := range evs {
		out[i] = e.Phase
	}
	return out
}

func testCreateAndGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := newRun(func(r *store.NewRun) {
		r.Webhook = "https://example.com/hook"
		r.WebhookEvents = []string{"start", "completed"}
	})
	b := newRun(nil)
	res := create(t, s, a, b)
	require.True(t, res[0].Created)
	require.True(t, res[1].Created)
	require.Less(t, res[0].Seq, res[1].Seq)

	// A batch of 70 (several statements), some with an idempotency key
	// already taken: each created run's Seq is the one stored with it.
	var batch []store.NewRun
	for i := range 70 {
		batch = append(batch, newRun(func(r *store.NewRun) {
			if i%10 == 3 {
				r.IdempotencyKey, r.RequestHash = "seq-key", "h"
			}
			if i%7 == 0 {
				r.Inputs, r.Priority = nil, -i
			}
		}))
	}
	bres := create(t, s, batch...)
	created := 0
	for i, r := range bres {
		if !r.Created {
			require.Zero(t, r.Seq)
			continue
		}
		created++
		stored := get(t, s, batch[i].Name)
		require.Equal(t, stored.Seq, r.Seq, "run %d", i)
		require.Equal(t, batch[i].Priority, stored.Priority, "run %d", i)
		if batch[i].Inputs == nil {
			require.Nil(t, stored.Inputs, "run %d", i)
		} else {
			require.JSONEq(t, string(batch[i].Inputs), string(stored.Inputs), "run %d", i)
		}
	}
	require.Equal(t, 64, created, "six repeats of one key")

	got := get(t, s, a.Name)
	require.Equal(t, a.Name, got.Name)
	require.Equal(t, tasks.PhaseQueued, got.Phase)
	require.Equal(t, "alice", got.Owner)
	require.Equal(t, a.Caller, got.Caller)
	require.JSONEq(t, `{"message":"hi"}`, string(got.Inputs))
	require.Equal(t, 3, got.Priority)
	require.Equal(t, 0, got.Attempt)
	require.Equal(t, t0, got.CreatedAt)
	require.Equal(t, a.Webhook, got.Webhook)
	require.Equal(t, a.WebhookEvents, got.WebhookEvents)
	require.Nil(t, got.StartedAt)
	require.Equal(t, int64(1), got.EventSeq)

	evs, err := s.Events(ctx, a.Name, 0)
	require.NoError(t, err)
	require.Equal(t, []tasks.Event{{Seq: 1, Run: a.Name, Phase: tasks.PhaseQueued, At: t0}}, evs)

	_, err = s.GetRun(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testIdempotency(t *testing.T, s store.Store) {
	keyed := func(key, hash string) store.NewRun {
		return newRun(func(r *store.NewRun) { r.IdempotencyKey, r.RequestHash = key, hash })
	}
	first := keyed("k1", "h1")
	res := create(t, s, first)
	require.True(t, res[0].Created)

	// Same key and body later, a conflicting body, duplicates within one
	// batch, and the same key under another subject.
	other := keyed("k1", "h1")
	other.Caller.Subject = "bob"
	res = create(t, s, keyed("k1", "h1"), keyed("k1", "h2"), keyed("k2", "x"), keyed("k2", "x"), keyed("k3", "a"), keyed("k3", "b"), other)
	require.Equal(t, store.CreateResult{Name: first.Name}, res[0])
	require.Equal(t, first.Name, res[1].Name)
	require.ErrorIs(t, res[1].Err, store.ErrIdempotencyConflict)
	require.True(t, res[2].Created)
	require.Equal(t, store.CreateResult{Name: res[2].Name}, res[3])
	require.True(t, res[4].Created)
	require.ErrorIs(t, res[5].Err, store.ErrIdempotencyConflict)
	require.True(t, res[6].Created, "keys are scoped per subject")

	runs, err := s.ListRuns(context.Background(), store.RunFilter{Limit: 100})
	require.NoError(t, err)
	require.Len(t, runs, 4)
}

func testIdempotencyConcurrent(t *testing.T, s store.Store) {
	var wg sync.WaitGroup
	names := make([]string, 8)
	created := make([]bool, 8)
	for i := range names {
		wg.Go(func() {
			res, err := s.CreateRuns(context.Background(), []store.NewRun{newRun(func(r *store.NewRun) {
				r.IdempotencyKey, r.RequestHash = "same", "h"
			})})
			require.NoError(t, err)
			names[i], created[i] = res[0].Name, res[0].Created
		})
	}
	wg.Wait()
	n := 0
	for i := range names {
		require.Equal(t, names[0], names[i])
		if created[i] {
			n++
		}
	}
	require.Equal(t, 1, n)
}

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

func ptr[T any](v T) *T { return &v }

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

func testListRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	var all []store.NewRun
	for i := range 7 {
		all = append(all, newRun(func(r *store.NewRun) {
			if i%2 == 1 {
				r.Caller.Subject = "bob"
			}
			if i == 6 {
				r.Task = "sleep"
			}
		}))
	}
	create(t, s, all...)
	apply(t, s, store.Transition{Run: all[0].Name, To: tasks.PhaseAborted, At: t0})

	// Pages of two, newest first, for alice (runs 0, 2, 4, 6).
	var seen []string
	var before int64
	for {
		page, err := s.ListRuns(ctx, store.RunFilter{Owner: "alice", BeforeSeq: before, Limit: 2})
		require.NoError(t, err)
		for _, r := range page {
			seen = append(seen, r.Name)
			before = r.Seq
		}
		if len(page) < 2 {
			break
		}
	}
	require.Equal(t, []string{all[6].Name, all[4].Name, all[2].Name, all[0].Name}, seen)

	tests := []struct {
		name string
		f    store.RunFilter
		want []string
	}{
		{"phase", store.RunFilter{Phases: []tasks.Phase{tasks.PhaseAborted}}, []string{all[0].Name}},
		{"task", store.RunFilter{Task: "demo/development/sleep"}, []string{all[6].Name}},
		{"owner and phase", store.RunFilter{Owner: "bob", Phases: []tasks.Phase{tasks.PhaseQueued, tasks.PhaseRunning}}, []string{all[5].Name, all[3].Name, all[1].Name}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runs, err := s.ListRuns(ctx, tc.f)
			require.NoError(t, err)
			var names []string
			for _, r := range runs {
				names = append(names, r.Name)
			}
			require.Equal(t, tc.want, names)
		})
	}
	_, err := s.ListRuns(ctx, store.RunFilter{Task: "bad"})
	require.Error(t, err)
}

func testActiveAndQueued(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b, c, d := newRun(nil), newRun(nil), newRun(nil), newRun(nil)
	res := create(t, s, a, b, c, d)
	apply(t, s, store.Transition{Run: b.Name, To: tasks.PhaseInitializing, At: t0, Bind: &store.Binding{Node: "n1"}})
	apply(t, s, store.Transition{Run: c.Name, To: tasks.PhaseFailed, At: t0})

	active, err := s.ActiveRuns(ctx, "")
	require.NoError(t, err)
	require.Len(t, active, 3)
	onNode, err := s.ActiveRuns(ctx, "n1")
	require.NoError(t, err)
	require.Len(t, onNode, 1)
	require.Equal(t, b.Name, onNode[0].Name)

	q, err := s.QueuedRunsAfter(ctx, res[0].Seq, 10)
	require.NoError(t, err)
	require.Len(t, q, 1)
	require.Equal(t, d.Name, q[0].Name)
}

func testLogs(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRun(nil)
	create(t, s, r)
	lines := []store.LogLine{
		{Run: r.Name, Attempt: 1, At: t0, Level: "INFO", Message: "one", Attrs: json.RawMessage(`{"k":1}`)},
		{Run: r.Name, Attempt: 1, At: t0.Add(time.Millisecond), Level: "WARN", Message: "two"},
	}
	require.NoError(t, s.AppendLogs(ctx, lines))
	got, err := s.Logs(ctx, r.Name)
	require.NoError(t, err)
	require.Equal(t, lines, got)
}

func testNodes(t *testing.T, s store.Store) {
	ctx := context.Background()
	require.ErrorIs(t, s.Heartbeat(ctx, "n1", t0), store.ErrNotFound)
	n := store.Node{ID: "n1", Inventory: json.RawMessage(`{"gpus":4}`), Heartbeat: t0, StartedAt: t0}
	require.NoError(t, s.UpsertNode(ctx, n))
	require.NoError(t, s.Heartbeat(ctx, "n1", t0.Add(time.Second)))
	nodes, err := s.Nodes(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	require.Equal(t, t0.Add(time.Second), nodes[0].Heartbeat)
	require.JSONEq(t, `{"gpus":4}`, string(nodes[0].Inventory))
	require.NoError(t, s.DeleteNode(ctx, "n1"))
	nodes, err = s.Nodes(ctx)
	require.NoError(t, err)
	require.Empty(t, nodes)
}

func testLease(t *testing.T, s store.Store) {
	ctx := context.Background()
	ok, err := s.AcquireLease(ctx, "scheduler", "a", 300*time.Millisecond)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.AcquireLease(ctx, "scheduler", "b", time.Second)
	require.NoError(t, err)
	require.False(t, ok, "held by a")
	ok, err = s.AcquireLease(ctx, "scheduler", "a", 300*time.Millisecond)
	require.NoError(t, err)
	require.True(t, ok, "a renews")
	ok, err = s.AcquireLease(ctx, "other", "b", time.Second)
	require.NoError(t, err)
	require.True(t, ok, "leases are independent")

	require.Eventually(t, func() bool {
		ok, err := s.AcquireLease(ctx, "scheduler", "b", time.Second)
		return err == nil && ok
	}, 3*time.Second, 50*time.Millisecond, "b takes over once a's lease expires")

	require.NoError(t, s.ReleaseLease(ctx, "scheduler", "a"), "releasing a lease one does not hold is a no-op")
	ok, err = s.AcquireLease(ctx, "scheduler", "a", time.Second)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, s.ReleaseLease(ctx, "scheduler", "b"))
	ok, err = s.AcquireLease(ctx, "scheduler", "a", time.Second)
	require.NoError(t, err)
	require.True(t, ok)
}

func testWebhookOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRun(func(r *store.NewRun) {
		r.Webhook = "https://example.com/hook"
		r.WebhookEvents = []string{store.WebhookStart, store.WebhookCompleted}
	})
	quiet := newRun(func(r *store.NewRun) { r.Webhook = "https://example.com/quiet" })
	create(t, s, r, quiet)
	// Delivery says which changes enqueued one: r's start and end, quiet's end.
	wantDelivery := map[string][]bool{r.Name: {false, true, true}, quiet.Name: {false, false, true}}
	for _, name := range []string{r.Name, quiet.Name} {
		got := []bool{
			apply(t, s, store.Transition{Run: name, To: tasks.PhaseInitializing, At: t0, Bind: &store.Binding{Node: "n1"}}).Delivery,
			apply(t, s, store.Transition{Run: name, Attempt: 1, To: tasks.PhaseRunning, At: t0.Add(time.Second)}).Delivery,
			apply(t, s, store.Transition{Run: name, Attempt: 1, To: tasks.PhaseSucceeded, At: t0.Add(2 * time.Second), Outputs: json.RawMessage(`{}`)}).Delivery,
		}
		require.Equal(t, wantDelivery[name], got, name)
	}

	ds, err := s.ListDeliveries(ctx, r.Name)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	require.Equal(t, store.WebhookStart, ds[0].Event)
	require.Equal(t, store.WebhookCompleted, ds[1].Event)
	var payload tasks.Run
	require.NoError(t, json.Unmarshal(ds[1].Payload, &payload))
	require.Equal(t, tasks.PhaseSucceeded, payload.Phase)
	qs, err := s.ListDeliveries(ctx, quiet.Name)
	require.NoError(t, err)
	require.Len(t, qs, 1, "default filter is completed only")

	manual, err := s.EnqueueDelivery(ctx, store.NewDelivery{Run: r.Name, URL: "https://example.com/x", Event: store.WebhookCompleted,
		Payload: json.RawMessage(`{}`), CreatedAt: t0.Add(time.Hour)})
	require.NoError(t, err)
	require.NotEmpty(t, manual.ID)

	require.Equal(t, []int64{1, 2}, []int64{ds[0].Seq, ds[1].Seq})
	require.EqualValues(t, 3, manual.Seq, "after the run's other deliveries")

	now := t0.Add(10 * time.Second)
	claimed, err := s.ClaimDueDeliveries(ctx, now, 10)
	require.NoError(t, err)
	require.Len(t, claimed, 2, "r's start and quiet's end: r's end waits for r's start, the manual one is not due yet")
	again, err := s.ClaimDueDeliveries(ctx, now, 10)
	require.NoError(t, err)
	require.Empty(t, again, "claimed deliveries are invisible for ClaimTTL")
	require.NoError(t, s.RecordDeliveryAttempt(ctx, ds[0].ID, store.DeliveryAttempt{At: now, StatusCode: 204, Done: true}))
	next, err := s.ClaimDueDeliveries(ctx, now, 10)
	require.NoError(t, err)
	require.Len(t, next, 1, "r's start delivered: its end goes")

	id := ds[1].ID
	require.NoError(t, s.RecordDeliveryAttempt(ctx, id, store.DeliveryAttempt{At: now, StatusCode: 500, NextAttemptAt: now.Add(time.Second)}))
	due, err := s.ClaimDueDeliveries(ctx, now.Add(2*time.Second), 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, id, due[0].ID)
	require.NoError(t, s.RecordDeliveryAttempt(ctx, id, store.DeliveryAttempt{At: now.Add(2 * time.Second), StatusCode: 204, Done: true}))
	require.ErrorIs(t, s.RecordDeliveryAttempt(ctx, "missing", store.DeliveryAttempt{At: now}), store.ErrNotFound)
	// A worker whose claim expired records its failed attempt after another
	// delivered it: the delivery stays delivered, never due again.
	require.NoError(t, s.RecordDeliveryAttempt(ctx, id, store.DeliveryAttempt{At: now.Add(3 * time.Second), StatusCode: 500, NextAttemptAt: now.Add(4 * time.Second)}))

	ds, err = s.ListDeliveries(ctx, r.Name)
	require.NoError(t, err)
	require.Equal(t, store.DeliveryDelivered, ds[1].State)
	require.Equal(t, []store.DeliveryAttempt{
		{At: now, StatusCode: 500},
		{At: now.Add(2 * time.Second), StatusCode: 204, Done: true},
	}, ds[1].Attempts)
	late, err := s.ClaimDueDeliveries(ctx, now.Add(time.Hour*2), 10)
	require.NoError(t, err)
	require.Len(t, late, 2, "delivered ones never come back; expired claims (quiet's end) do, and the manual one is due")
}

// testDeliveryOrder: a run's deliveries are claimed one at a time in the
// order of their Seq, each once the one before was delivered or given up,
// however long its retries take; other runs' are not held up.
func testDeliveryOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	var runs []store.NewRun
	for range 2 {
		runs = append(runs, newRun(func(r *store.NewRun) {
			r.Webhook = "https://example.com/hook"
			r.WebhookEvents = []string{store.WebhookStart, store.WebhookCompleted}
		}))
	}
	create(t, s, runs...)
	byRun := map[string][]store.Delivery{}
	for _, r := range runs {
		apply(t, s, store.Transition{Run: r.Name, To: tasks.PhaseRunning, Start: true, At: t0, Bind: &store.Binding{Node: "n1"}})
		apply(t, s, store.Transition{Run: r.Name, Attempt: 1, To: tasks.PhaseSucceeded, At: t0.Add(time.Second), Outputs: json.RawMessage(`{}`)})
		ds, err := s.ListDeliveries(ctx, r.Name)
		require.NoError(t, err)
		require.Len(t, ds, 2)
		require.Equal(t, []int64{1, 2}, []int64{ds[0].Seq, ds[1].Seq})
		require.Equal(t, []string{store.WebhookStart, store.WebhookCompleted}, []string{ds[0].Event, ds[1].Event})
		byRun[r.Name] = ds
	}
	a, b := byRun[runs[0].Name], byRun[runs[1].Name]
	claim := func(at time.Time) []string {
		t.Helper()
		got, err := s.ClaimDueDeliveries(ctx, at, 10)
		require.NoError(t, err)
		var ids []string
		for _, d := range got {
			ids = append(ids, d.ID)
		}
		return ids
	}
	record := func(id string, a store.DeliveryAttempt) {
		t.Helper()
		require.NoError(t, s.RecordDeliveryAttempt(ctx, id, a))
	}

	now := t0.Add(10 * time.Second)
	require.ElementsMatch(t, []string{a[0].ID, b[0].ID}, claim(now), "each run's first; the runs together")
	// a's start fails and is retried in an hour: a's end waits, though due.
	record(a[0].ID, store.DeliveryAttempt{At: now, StatusCode: 500, NextAttemptAt: now.Add(time.Hour)})
	require.Empty(t, claim(now.Add(time.Second)))
	record(b[0].ID, store.DeliveryAttempt{At: now, StatusCode: 204, Done: true})
	require.Equal(t, []string{b[1].ID}, claim(now.Add(time.Second)), "b's start delivered: b's end goes")
	require.ElementsMatch(t, []string{a[0].ID, b[1].ID}, claim(now.Add(time.Hour+time.Minute)),
		"a's start due again; b's end, its claim expired")
	// a's start is given up: a's end goes.
	record(a[0].ID, store.DeliveryAttempt{At: now.Add(time.Hour), StatusCode: 500, Error: "given up", Done: true})
	require.Equal(t, []string{a[1].ID}, claim(now.Add(time.Hour+time.Minute)))
}

func testPurge(t *testing.T, s store.Store) {
	ctx := context.Background()
	old, recent, active := newRun(nil), newRun(nil), newRun(nil)
	create(t, s, old, recent, active)
	apply(t, s, store.Transition{Run: old.Name, To: tasks.PhaseSucceeded, At: t0, Outputs: json.RawMessage(`{"x":1}`)})
	apply(t, s, store.Transition{Run: recent.Name, To: tasks.PhaseSucceeded, At: t0.Add(time.Hour), Outputs: json.RawMessage(`{"x":2}`)})
	require.NoError(t, s.AppendLogs(ctx, []store.LogLine{{Run: old.Name, At: t0, Level: "INFO", Message: "m"}}))

	n, err := s.PurgeRuns(ctx, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got := get(t, s, old.Name)
	require.True(t, got.Purged)
	require.Nil(t, got.Inputs)
	require.Nil(t, got.Outputs)
	require.Equal(t, tasks.PhaseSucceeded, got.Phase, "the record stays")
	logs, err := s.Logs(ctx, old.Name)
	require.NoError(t, err)
	require.Empty(t, logs)
	require.NotNil(t, get(t, s, recent.Name).Outputs)
	require.NotNil(t, get(t, s, active.Name).Inputs)

	n, err = s.PurgeRuns(ctx, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Zero(t, n)
}

// testDeleteRuns deletes old terminal runs whole, oldest first and no more
// than asked, and leaves newer and unfinished runs as they were.
func testDeleteRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	finish := func(r store.NewRun, at time.Time) {
		apply(t, s, store.Transition{Run: r.Name, To: tasks.PhaseInitializing, At: at, Bind: &store.Binding{Node: "n1"}})
		apply(t, s, store.Transition{Run: r.Name, Attempt: 1, To: tasks.PhaseSucceeded, At: at, Outputs: json.RawMessage(`{}`)})
	}
	keyed := func(key string) store.NewRun {
		return newRun(func(r *store.NewRun) {
			r.IdempotencyKey, r.RequestHash = key, "h"
			r.Webhook = "https://example.com/hook"
		})
	}
	oldest, old, recent, queued := keyed("del-1"), keyed("del-2"), keyed("del-3"), newRun(nil)
	create(t, s, oldest, old, recent, queued)
	finish(oldest, t0)
	finish(old, t0.Add(time.Minute))
	finish(recent, t0.Add(time.Hour))
	require.NoError(t, s.AppendLogs(ctx, []store.LogLine{{Run: oldest.Name, Attempt: 1, At: t0, Level: "INFO", Message: "x"}}))
	ds, err := s.ListDeliveries(ctx, oldest.Name)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.NoError(t, s.RecordDeliveryAttempt(ctx, ds[0].ID, store.DeliveryAttempt{At: t0, StatusCode: 500, Error: "boom", NextAttemptAt: t0.Add(time.Minute)}))

	cut := t0.Add(30 * time.Minute)
	n, err := s.DeleteRuns(ctx, cut, 1)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the limit")
	_, err = s.GetRun(ctx, oldest.Name)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetRun(ctx, old.Name)
	require.NoError(t, err, "the newer of the two old runs goes second")
	evs, err := s.Events(ctx, oldest.Name, 0)
	require.NoError(t, err)
	require.Empty(t, evs)
	logs, err := s.Logs(ctx, oldest.Name)
	require.NoError(t, err)
	require.Empty(t, logs)
	ds, err = s.ListDeliveries(ctx, oldest.Name)
	require.NoError(t, err)
	require.Empty(t, ds)

	n, err = s.DeleteRuns(ctx, cut, 100)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = s.DeleteRuns(ctx, cut, 100)
	require.NoError(t, err)
	require.Zero(t, n)
	for _, r := range []store.NewRun{recent, queued} {
		_, err := s.GetRun(ctx, r.Name)
		require.NoError(t, err, r.Name)
		evs, err := s.Events(ctx, r.Name, 0)
		require.NoError(t, err)
		require.NotEmpty(t, evs, r.Name)
	}
	ds, err = s.ListDeliveries(ctx, recent.Name)
	require.NoError(t, err)
	require.Len(t, ds, 1, "a newer run keeps its delivery")
	// A retried request with a deleted run's key starts a new run; a
	// living run's key still finds it.
	res := create(t, s, keyed("del-1"), keyed("del-3"))
	require.True(t, res[0].Created)
	require.NotEqual(t, oldest.Name, res[0].Name)
	require.Equal(t, store.CreateResult{Name: recent.Name}, res[1])
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

// testPing: a store answers Ping until it is closed.
func testPing(t *testing.T, s store.Store) {
	require.NoError(t, s.Ping(context.Background()))
	require.NoError(t, s.Close())
	require.Error(t, s.Ping(context.Background()))
}

func testListen(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := s.Listen(ctx)
	r := newRun(nil)
	create(t, s, r)
	apply(t, s, store.Transition{Run: r.Name, To: tasks.PhaseInitializing, At: t0, Bind: &store.Binding{Node: "n7"}})
	_, err := s.RequestAbort(ctx, r.Name, "stop", t0)
	require.NoError(t, err)
	// A queued run with a callback URL, aborted: its end enqueues a
	// delivery, which its notification says.
	hooked := newRun(func(r *store.NewRun) { r.Webhook = "https://example.com/hook" })
	create(t, s, hooked)
	_, err = s.RequestAbort(ctx, hooked.Name, "stop", t0)
	require.NoError(t, err)

	want := []store.Notification{
		{Kind: store.NotifySubmitted, Local: true},
		{Kind: store.NotifyEvent, Run: r.Name, Seq: 2, Phase: tasks.PhaseInitializing, Node: "n7", Attempt: 1, Local: true},
		{Kind: store.NotifyAbort, Run: r.Name, Node: "n7", Local: true},
		{Kind: store.NotifySubmitted, Local: true},
		{Kind: store.NotifyEvent, Run: hooked.Name, Seq: 2, Phase: tasks.PhaseAborted, Delivery: true, Local: true},
	}
	var got []store.Notification
	timeout := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case n := <-ch:
			got = append(got, n)
		case <-timeout:
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	require.Equal(t, want, got)
	cancel()
	require.Eventually(t, func() bool {
		_, open := <-ch
		return !open
	}, time.Second, 10*time.Millisecond)
}
