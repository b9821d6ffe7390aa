package callback_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/callback"
	"github.com/taskgate/taskgate/tasks/store"
)

// TestRunCallbacksArriveInOrder: the receiver fails run.started of run
// "slow" until it has seen both callbacks of run "fast", and at least three
// times; it must see slow's run.completed only after slow's run.started was
// accepted, each with its sequence number, while fast's callbacks are not
// held up by slow's retries.
func TestRunCallbacksArriveInOrder(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "taskgate.db"))
	defer st.Close()

	type call struct {
		run, typ string
		seq      int64
		status   int
	}
	var mu sync.Mutex
	var calls []call
	fastDone, slowStarts := false, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Type     string    `json:"type"`
			Sequence int64     `json:"sequence"`
			Data     tasks.Run `json:"data"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &p); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		status := http.StatusNoContent
		switch {
		case p.Data.Name == "fast" && p.Type == callback.TypeRunCompleted:
			fastDone = true
		case p.Data.Name == "slow" && p.Type == callback.TypeRunStarted:
			if slowStarts++; slowStarts <= 3 || !fastDone {
				status = http.StatusServiceUnavailable
			}
		}
		calls = append(calls, call{p.Data.Name, p.Type, p.Sequence, status})
		w.WriteHeader(status)
	}))
	defer srv.Close()

	ctx := context.Background()
	now := time.Now()
	for _, name := range []string{"slow", "fast"} {
		if _, err := st.CreateRuns(ctx, []store.NewRun{{
			Name: name, Project: "demo", Domain: "development", Task: "echo", Version: "v1",
			Caller: store.Caller{Subject: "alice"}, Inputs: json.RawMessage(`{}`),
			Webhook: srv.URL + "/hook", WebhookEvents: []string{store.WebhookStart, store.WebhookCompleted}, CreatedAt: now,
		}}); err != nil {
			t.Fatal(err)
		}
		for _, tr := range []store.Transition{
			{Run: name, To: tasks.PhaseRunning, Start: true, At: now, Bind: &store.Binding{Node: "n1"}},
			{Run: name, Attempt: 1, To: tasks.PhaseSucceeded, At: now.Add(time.Millisecond), Outputs: json.RawMessage(`{}`)},
		} {
			if res, err := st.Transition(ctx, []store.Transition{tr}); err != nil || !res[0].Applied {
				t.Fatalf("%s to %s: %v", name, tr.To, err)
			}
		}
	}

	// Both runs' callbacks are in the outbox, due, before the worker starts.
	steps := make([]time.Duration, 100)
	for i := range steps {
		steps[i] = 20 * time.Millisecond
	}
	w := newWorker(t, st, callback.WorkerConfig{Schedule: steps, Jitter: -1, PollInterval: 5 * time.Millisecond})
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool {
		for _, d := range append(deliveries(t, st, "slow"), deliveries(t, st, "fast")...) {
			if d.State == store.DeliveryPending {
				return false
			}
		}
		return true
	})

	// slow's run.started is accepted only once fast's run.completed came:
	// had fast waited behind slow, slow's would have been given up.
	mu.Lock()
	defer mu.Unlock()
	var slow []string
	for _, c := range calls {
		if c.run == "slow" {
			slow = append(slow, fmt.Sprintf("%s#%d:%d", c.typ, c.seq, c.status))
		}
	}
	if n := len(slow); n < 5 || slow[n-2] != "run.started#1:204" || slow[n-1] != "run.completed#2:204" {
		t.Fatalf("slow's callbacks: %v; want run.started#1 refused, then accepted, then run.completed#2", slow)
	}
	for _, s := range slow[:len(slow)-2] {
		if s != "run.started#1:503" {
			t.Fatalf("slow's callbacks: %v; run.completed came before run.started was accepted", slow)
		}
	}
}
