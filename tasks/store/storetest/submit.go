package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

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

// testCreatedInSeqOrder: a batch that reaches the store after another but
// holds runs created before that one's (it waited for the database) is
// stored with the latest creation time stored before, so creation times
// follow seq order (store.CreatedSkew); CreateResult says what was stored.
func testCreatedInSeqOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := func(sec int) func(*store.NewRun) {
		return func(r *store.NewRun) { r.CreatedAt = t0.Add(time.Duration(sec) * time.Second) }
	}
	first := create(t, s, newRun(at(10)))
	second := create(t, s, newRun(at(5)), newRun(at(20)), newRun(at(15)))
	want := []int{10, 10, 20, 20}
	for i, res := range append(first, second...) {
		require.True(t, res.Created)
		wantAt := t0.Add(time.Duration(want[i]) * time.Second)
		require.True(t, wantAt.Equal(res.CreatedAt), "run %d: created %v, want %v", i, res.CreatedAt, wantAt)
		got, err := s.GetRun(ctx, res.Name)
		require.NoError(t, err)
		require.True(t, wantAt.Equal(got.CreatedAt), "run %d as stored: %v, want %v", i, got.CreatedAt, wantAt)
	}
}
