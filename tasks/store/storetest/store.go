package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

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
