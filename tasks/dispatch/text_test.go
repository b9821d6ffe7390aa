package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
)

// TestSubmitRefusesUnstorableText: text that PostgreSQL would refuse (and
// fail the group commit with) or that would be served back altered is a
// *TextError naming the field, before anything is stored.
func TestSubmitRefusesUnstorableText(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := start(t, openStore(t, t.TempDir()), f, nil)
	good := func() dispatch.SubmitRequest {
		return dispatch.SubmitRequest{Task: f.echo, Inputs: json.RawMessage(`{"message":"hi"}`), Caller: alice}
	}
	tests := []struct {
		name  string
		mod   func(*dispatch.SubmitRequest)
		field string
		where string
	}{
		{"webhook byte", func(r *dispatch.SubmitRequest) { r.Webhook = "https://example.com/\xff" }, "webhook", ""},
		{"webhook NUL", func(r *dispatch.SubmitRequest) { r.Webhook = "https://example.com/\x00" }, "webhook", ""},
		{"key", func(r *dispatch.SubmitRequest) { r.IdempotencyKey = "k\xff" }, "idempotency_key", ""},
		{"events", func(r *dispatch.SubmitRequest) { r.Webhook, r.WebhookEvents = "https://example.com/", []string{"\x00"} }, "webhook_events", ""},
		{"caller", func(r *dispatch.SubmitRequest) {
			r.Caller = identity.Identity{Subject: "eve", Groups: []string{"\xfe"}}
		}, "caller", ""},
		{"inputs byte", func(r *dispatch.SubmitRequest) { r.Inputs = json.RawMessage("{\"message\":\"\xff\"}") }, "inputs", ".message"},
		{"inputs surrogate", func(r *dispatch.SubmitRequest) { r.Inputs = json.RawMessage(`{"message":"\ud800"}`) }, "inputs", ".message"},
		{"inputs NUL", func(r *dispatch.SubmitRequest) { r.Inputs = json.RawMessage(`{"message":"\u0000"}`) }, "inputs", ".message"},
	}
	for _, tt := range tests {
		req := good()
		tt.mod(&req)
		_, _, err := d.Submit(context.Background(), req)
		require.ErrorIs(t, err, dispatch.ErrInvalidText, tt.name)
		var te *dispatch.TextError
		require.ErrorAs(t, err, &te, tt.name)
		require.Equal(t, tt.field, te.Field, tt.name)
		require.Equal(t, tt.where, te.Where, tt.name)
	}
	runs, _, err := d.List(context.Background(), dispatch.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, runs, "a refused request was stored")
}

// TestIdempotencyCoversEveryOption: a retry with the same key must be the
// same request, options included; one that changes the priority or the
// callback is a conflict, not the first run with the change dropped.
func TestIdempotencyCoversEveryOption(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := start(t, openStore(t, t.TempDir()), f, nil)
	ctx := context.Background()
	req := dispatch.SubmitRequest{Task: f.echo, Inputs: json.RawMessage(`{"message":"hi"}`), Caller: alice,
		IdempotencyKey: "k1", Priority: 5, Webhook: "https://example.com/hook", WebhookEvents: []string{"completed"}}
	first, created, err := d.Submit(ctx, req)
	require.NoError(t, err)
	require.True(t, created)
	again, created, err := d.Submit(ctx, req)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.Name, again.Name)
	for name, mod := range map[string]func(*dispatch.SubmitRequest){
		"priority":   func(r *dispatch.SubmitRequest) { r.Priority = 6 },
		"no webhook": func(r *dispatch.SubmitRequest) { r.Webhook, r.WebhookEvents = "", nil },
		"webhook":    func(r *dispatch.SubmitRequest) { r.Webhook = "https://example.com/other" },
		"events":     func(r *dispatch.SubmitRequest) { r.WebhookEvents = []string{"start", "completed"} },
		"inputs":     func(r *dispatch.SubmitRequest) { r.Inputs = json.RawMessage(`{"message":"ho"}`) },
	} {
		changed := req
		mod(&changed)
		_, _, err := d.Submit(ctx, changed)
		require.ErrorIs(t, err, dispatch.ErrIdempotencyConflict, name)
	}
}

// gatedStore refuses every batch of new runs that holds one of mallory's,
// and holds its first calls (one per submit writer) each until its gate
// closes, so that the submits that arrive meanwhile are committed
// together.
type gatedStore struct {
	store.Store
	calls   atomic.Int32
	entered chan struct{}
	gates   [2]chan struct{}
}

func (s *gatedStore) CreateRuns(ctx context.Context, runs []store.NewRun) ([]store.CreateResult, error) {
	if n := s.calls.Add(1); n <= int32(len(s.gates)) {
		s.entered <- struct{}{}
		<-s.gates[n-1]
	}
	for _, r := range runs {
		if r.Caller.Subject == "mallory" {
			return nil, errors.New("refused")
		}
	}
	return s.Store.CreateRuns(ctx, runs)
}

// TestRefusedRunDoesNotSinkItsBatch: concurrent submits share one
// transaction; when the store refuses it for one run, the others are
// stored one by one and succeed.
func TestRefusedRunDoesNotSinkItsBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := &gatedStore{Store: openStore(t, t.TempDir()), entered: make(chan struct{}),
		gates: [2]chan struct{}{make(chan struct{}), make(chan struct{})}}
	d := start(t, st, f, nil)
	t.Cleanup(func() { close(st.gates[1]) }) // before d closes
	ctx := context.Background()
	submitAs := func(who string) error {
		_, _, err := d.Submit(ctx, dispatch.SubmitRequest{Task: f.echo, Inputs: json.RawMessage(`{"message":"hi"}`),
			Caller: identity.Identity{Subject: who}})
		return err
	}
	// Both submit writers are held: what comes next queues up, and the
	// first writer let go takes it all as one batch.
	for range st.gates {
		go func() { _ = submitAs("gate") }()
		<-st.entered
	}
	errs := make(chan error, 4)
	for _, who := range []string{"alice", "mallory", "bob", "carol"} {
		go func() {
			if err := submitAs(who); err != nil {
				errs <- fmt.Errorf("%s: %w", who, err)
				return
			}
			errs <- nil
		}()
	}
	require.Eventually(t, func() bool { return dispatch.SubmitsQueuedForTest(d) == 4 }, 10*time.Second, time.Millisecond)
	close(st.gates[0])
	var refused []error
	for range 4 {
		if err := <-errs; err != nil {
			refused = append(refused, err)
		}
	}
	require.Len(t, refused, 1, "%v", refused)
	require.ErrorContains(t, refused[0], "mallory")
}
