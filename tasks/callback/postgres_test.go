package callback_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks/callback"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/postgres"
	"github.com/taskgate/taskgate/tasks/store/postgres/pgtest"
)

// openPostgres opens two stores on one fresh schema, as two taskgate
// processes sharing PostgreSQL would. It skips without
// TASKGATE_TEST_POSTGRES_URL.
func openPostgres(t *testing.T) (*postgres.Store, *postgres.Store) {
	t.Helper()
	cfg := pgtest.Config(t, "cb", "the shared-outbox test")
	cfg.MaxConns = 4
	ctx := context.Background()
	var stores [2]*postgres.Store
	for i := range stores {
		s, err := postgres.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	t.Cleanup(func() {
		for _, s := range stores {
			_ = s.Close()
		}
	})
	return stores[0], stores[1]
}

// Two processes drain one PostgreSQL outbox while the receiver fails every
// other request: every callback ends delivered exactly once, and every
// attempt of a callback carries its one webhook-id.
func TestWorkersSharePostgresOutbox(t *testing.T) {
	t.Parallel()
	a, b := openPostgres(t)
	// Each callback's first two attempts fail.
	var mu sync.Mutex
	calls := map[string]int{}
	flaky := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.Header.Get("webhook-id")]++
		fail := calls[r.Header.Get("webhook-id")] <= 2
		mu.Unlock()
		if fail {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(204)
	}
	rcv := newReceiver(t, []string{testSecret.Encode()}, flaky)
	const n = 20
	t0 := time.Now()
	ids := map[string]bool{}
	for i := range n {
		ids[enqueue(t, a, fmt.Sprintf("run-%d", i), rcv.srv.URL, t0).ID] = true
	}

	clk := &clock{t: t0}
	cfg := callback.WorkerConfig{Schedule: []time.Duration{time.Second, time.Second, time.Second, time.Second}, Jitter: -1, Concurrency: 4, Now: clk.Now}
	workers := []*callback.Worker{newWorker(t, a, cfg), newWorker(t, b, cfg)}
	for step := range 5 {
		clk.Set(t0.Add(time.Duration(step) * time.Second))
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Go(func() { pass(t, w) })
		}
		wg.Wait()
	}

	attempts := 0
	for i := range n {
		for _, d := range deliveries(t, a, fmt.Sprintf("run-%d", i)) {
			st := statuses(d)
			attempts += len(st)
			ok := 0
			for _, c := range st {
				if c/100 == 2 {
					ok++
				}
			}
			if d.State != store.DeliveryDelivered || ok != 1 || !sameInts(st, []int{503, 503, 204}) {
				t.Fatalf("%s is %s after %v, want delivered after 503 503 204", d.ID, d.State, st)
			}
		}
	}
	got := rcv.got()
	if len(got) != attempts {
		t.Fatalf("receiver saw %d requests, the outbox recorded %d attempts", len(got), attempts)
	}
	for _, r := range got {
		if !ids[r.id] {
			t.Fatalf("unknown webhook-id %q", r.id)
		}
	}
}
