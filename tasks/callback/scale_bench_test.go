package callback_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/callback"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/postgres/pgtest"
)

// drainCount is how many callbacks of a backlog one measurement delivers.
const drainCount = 10_000

// BenchmarkCallbacks measures webhook callbacks delivered per second end
// to end, to a loopback receiver, per store and backlog size: a backlog of
// pending deliveries is made the way runs make them (runs with a webhook,
// finished in batches), then a Worker with the production defaults
// (Concurrency 64, PerHost 16) claims, POSTs and durably records the first
// drainCount of them. Beside it, in the same run, the bare attempt path:
// as many signed Deliverer.Deliver calls, PerHost at a time, with no
// store. callbacks/s that falls as the backlog grows means a cost per
// callback that grows with it (issue 19).
//
// The 100k backlogs run when TASKGATE_BENCH_SCALE is set (make
// bench-scale); PostgreSQL when TASKGATE_TEST_POSTGRES_URL is. Run it with
// -benchtime=1x.
func BenchmarkCallbacks(b *testing.B) {
	srv := benchReceiver(b)
	sizes := []int{10_000}
	if os.Getenv("TASKGATE_BENCH_SCALE") != "" {
		sizes = append(sizes, 100_000)
	}
	stores := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"sqlite", func(b *testing.B) store.Store { return openStore(b, filepath.Join(b.TempDir(), "bench.db")) }},
		{"postgres", func(b *testing.B) store.Store {
			return pgtest.Open(b, "cbbench", "the PostgreSQL callback benchmark", 8)
		}},
	}
	for _, s := range stores {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s/backlog=%dk", s.name, n/1000), func(b *testing.B) {
				var sent, base time.Duration
				delivered := 0
				for range b.N {
					b.StopTimer()
					st := s.open(b)
					seedBacklog(b, st, srv.URL, n)
					b.StartTimer()
					sent += drainOutbox(b, st, drainCount)
					b.StopTimer()
					base += attemptPath(b, srv.URL, drainCount)
					delivered += drainCount
					_ = st.Close()
				}
				cps, aps := float64(delivered)/sent.Seconds(), float64(delivered)/base.Seconds()
				b.ReportMetric(cps, "callbacks/s")
				b.ReportMetric(aps, "attempts/s")
				b.ReportMetric(cps/aps, "x_attempt_path")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// seedBacklog makes n pending deliveries to url: n runs with a webhook,
// created, started and succeeded in batches, whose ends enqueue them.
func seedBacklog(b *testing.B, st store.Store, url string, n int) {
	ctx := context.Background()
	at := time.Now().Add(-time.Minute)
	const batch = 1000
	for first := 0; first < n; first += batch {
		runs := make([]store.NewRun, 0, batch)
		for i := first; i < min(first+batch, n); i++ {
			runs = append(runs, store.NewRun{
				Name: fmt.Sprintf("run-%07d", i), Project: "demo", Domain: "development", Task: "echo", Version: "v1",
				Caller: store.Caller{Subject: "bench"}, Inputs: json.RawMessage(`{"message":"hi"}`),
				Webhook: url, CreatedAt: at,
			})
		}
		if _, err := st.CreateRuns(ctx, runs); err != nil {
			b.Fatal(err)
		}
		for _, step := range []store.Transition{
			{To: tasks.PhaseRunning, Start: true, At: at, Bind: &store.Binding{Node: "n1"}},
			{Attempt: 1, To: tasks.PhaseSucceeded, At: at, Outputs: json.RawMessage(`{"message":"hi"}`)},
		} {
			ts := make([]store.Transition, len(runs))
			for i, r := range runs {
				ts[i] = step
				ts[i].Run = r.Name
			}
			res, err := st.Transition(ctx, ts)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range res {
				if !r.Applied {
					b.Fatalf("%s: %s not applied", r.Run.Name, step.To)
				}
			}
		}
	}
}

// drainOutbox runs a Worker with the default configuration on st until it
// has recorded n attempts, and returns how long that took.
func drainOutbox(b *testing.B, st store.Store, n int) time.Duration {
	counted := &countingOutbox{Outbox: st, target: int64(n), reached: make(chan struct{})}
	w := newWorker(b, counted, callback.WorkerConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- w.Run(ctx) }()
	<-counted.reached
	took := time.Since(start)
	cancel()
	<-stopped
	if failed := counted.failed.Load(); failed > 0 {
		b.Fatalf("%d attempts failed", failed)
	}
	return took
}

// attemptPath makes n signed attempts to url, 16 (the worker's default
// PerHost) at a time, and returns how long they took.
func attemptPath(b *testing.B, url string, n int) time.Duration {
	d := newDeliverer(b, callback.Config{})
	msg := testMessage(b, url)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if res := d.Deliver(context.Background(), msg); !res.Delivered() {
					b.Error(res.Err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
