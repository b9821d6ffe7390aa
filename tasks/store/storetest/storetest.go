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
		{"CreatedInSeqOrder", testCreatedInSeqOrder},
		{"Lifecycle", testLifecycle},
		{"ConditionalTransitions", testConditionalTransitions},
		{"BindAndStart", testBindAndStart},
		{"RetryAttempts", testRetryAttempts},
		{"WaitReasonRefresh", testWaitReasonRefresh},
		{"BatchTransitions", testBatchTransitions},
		{"BatchFinishes", testBatchFinishes},
		{"Abort", testAbort},
		{"ListRuns", testListRuns},
		{"ListRunsFilters", testListRunsFilters},
		{"ActiveAndQueued", testActiveAndQueued},
		{"Logs", testLogs},
		{"Progress", testProgress},
		{"Nodes", testNodes},
		{"Lease", testLease},
		{"WebhookOutbox", testWebhookOutbox},
		{"DeliveryOrder", testDeliveryOrder},
		{"DeliveryRecords", testDeliveryRecords},
		{"Purge", testPurge},
		{"DeleteRuns", testDeleteRuns},
		{"UnstorableText", testUnstorableText},
		{"Interruptions", testInterruptions},
		{"Sessions", testSessions},
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

func ptr[T any](v T) *T { return &v }
