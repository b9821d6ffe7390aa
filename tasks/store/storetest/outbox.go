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

// testDeliveryRecords: RecordDeliveries writes a batch of claimed
// deliveries back in one call: attempts (delivered, retried) and
// postponements, which record no attempt; records of deliveries that are
// no longer pending, or never were, change nothing and fail nothing; a
// claim in the same call sees the records. Claims carry the number of
// attempts made so far.
func testDeliveryRecords(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRun(nil)
	create(t, s, r)
	var ids []string
	for i := range 4 {
		d, err := s.EnqueueDelivery(ctx, store.NewDelivery{Run: r.Name, URL: fmt.Sprintf("https://example.com/%d", i),
			Event: store.WebhookCompleted, Payload: json.RawMessage(`{}`), CreatedAt: t0})
		require.NoError(t, err)
		ids = append(ids, d.ID)
	}
	now := t0.Add(time.Second)
	claimed, err := s.ClaimDueDeliveries(ctx, now, 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1, "a run's deliveries go one at a time")
	require.Zero(t, claimed[0].AttemptsMade)

	records(t, s, store.DeliveryRecord{ID: ids[0], Attempt: store.DeliveryAttempt{At: now, StatusCode: 503, NextAttemptAt: now.Add(time.Minute)}},
		store.DeliveryRecord{ID: "missing", Attempt: store.DeliveryAttempt{At: now, StatusCode: 204, Done: true}})
	require.Empty(t, claimOne(t, s, now.Add(30*time.Second)), "retried later; the next waits for it")
	again := claimOne(t, s, now.Add(time.Minute))
	require.Len(t, again, 1)
	require.Equal(t, 1, again[0].AttemptsMade)

	// Postponed: due later, no attempt recorded; then delivered with a
	// stale record in the same batch, which changes nothing.
	records(t, s, store.DeliveryRecord{ID: ids[0], Postponed: true, Attempt: store.DeliveryAttempt{NextAttemptAt: now.Add(2 * time.Minute)}})
	require.Empty(t, claimOne(t, s, now.Add(time.Minute+time.Second)))
	post := claimOne(t, s, now.Add(2*time.Minute))
	require.Len(t, post, 1)
	require.Equal(t, 1, post[0].AttemptsMade, "a postponement is no attempt")
	// The records, then a claim in the same transaction: it sees them.
	at := now.Add(2 * time.Minute)
	next, err := s.RecordDeliveries(ctx, []store.DeliveryRecord{
		{ID: ids[0], Attempt: store.DeliveryAttempt{At: at, StatusCode: 204, Done: true}},
		{ID: ids[0], Attempt: store.DeliveryAttempt{At: at, StatusCode: 500, NextAttemptAt: at.Add(time.Hour)}},
		{ID: ids[0], Postponed: true, Attempt: store.DeliveryAttempt{NextAttemptAt: at.Add(time.Hour)}},
	}, store.DeliveryClaim{Now: at, Limit: 10})
	require.NoError(t, err)
	require.Len(t, next, 1)
	require.Equal(t, ids[1], next[0].ID, "the first settled: the second goes")
	ds, err := s.ListDeliveries(ctx, r.Name)
	require.NoError(t, err)
	require.Equal(t, store.DeliveryDelivered, ds[0].State)
	require.Equal(t, 2, ds[0].AttemptsMade)
	require.Equal(t, []store.DeliveryAttempt{{At: now, StatusCode: 503}, {At: at, StatusCode: 204, Done: true}}, ds[0].Attempts)
	require.Empty(t, claimOne(t, s, at), "claimed with the records")
	// A late record of the settled delivery, in a batch of distinct ones
	// (multi-row statements), changes nothing.
	records(t, s, store.DeliveryRecord{ID: ids[0], Attempt: store.DeliveryAttempt{At: at.Add(time.Second), StatusCode: 500, NextAttemptAt: at.Add(time.Hour)}},
		store.DeliveryRecord{ID: "missing", Postponed: true, Attempt: store.DeliveryAttempt{NextAttemptAt: at.Add(time.Hour)}})
	ds, err = s.ListDeliveries(ctx, r.Name)
	require.NoError(t, err)
	require.Equal(t, store.DeliveryDelivered, ds[0].State)
	require.Equal(t, 2, ds[0].AttemptsMade)
	none, err := s.RecordDeliveries(ctx, nil, store.DeliveryClaim{})
	require.NoError(t, err)
	require.Empty(t, none)
}

func records(t *testing.T, s store.Store, rs ...store.DeliveryRecord) {
	t.Helper()
	claimed, err := s.RecordDeliveries(context.Background(), rs, store.DeliveryClaim{})
	require.NoError(t, err)
	require.Empty(t, claimed)
}

func claimOne(t *testing.T, s store.Store, at time.Time) []store.Delivery {
	t.Helper()
	ds, err := s.ClaimDueDeliveries(context.Background(), at, 10)
	require.NoError(t, err)
	return ds
}
