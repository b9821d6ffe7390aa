package dispatch_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/postgres"
)

// benchStores opens each store a benchmark runs against: SQLite always,
// PostgreSQL (in a fresh schema) when TASKGATE_TEST_POSTGRES_URL is set.
func benchStores(b *testing.B) map[string]func(b *testing.B) store.Store {
	m := map[string]func(b *testing.B) store.Store{
		"sqlite": func(b *testing.B) store.Store { return openStore(b, b.TempDir()) },
	}
	url := os.Getenv("TASKGATE_TEST_POSTGRES_URL")
	if url == "" {
		b.Log("TASKGATE_TEST_POSTGRES_URL is unset: PostgreSQL benchmarks skipped")
		return m
	}
	m["postgres"] = func(b *testing.B) store.Store {
		buf := make([]byte, 6)
		_, _ = rand.Read(buf)
		schema := "bench_" + hex.EncodeToString(buf)
		ctx := context.Background()
		st, err := postgres.Open(ctx, postgres.Config{URL: url, Schema: schema, MaxConns: 16})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = st.Close()
			if conn, err := pgx.Connect(ctx, url); err == nil {
				_, _ = conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
				_ = conn.Close(ctx)
			}
		})
		return st
	}
	return m
}

// BenchmarkSubmit measures durable accepted runs per second through
// Dispatcher.Submit from many goroutines (the HTTP handlers' shape), in a
// single process that also schedules and executes the no-op runs, and, in
// the same run on the same database, the bare baseline: one run inserted per
// transaction (one fsync each) from as many goroutines.
func BenchmarkSubmit(b *testing.B) {
	for name, open := range benchStores(b) {
		for _, mode := range []string{"accept", "execute"} {
			b.Run(name+"/"+mode, func(b *testing.B) { benchSubmit(b, open(b), mode == "execute") })
		}
	}
}

// benchSubmit submits b.N runs from many goroutines. With execute the
// dispatcher also schedules and runs them (one process doing everything);
// without, it only accepts them (an API process whose scheduler and agents
// are elsewhere).
func benchSubmit(b *testing.B, st store.Store, execute bool) {
	{
		{
			f := newFixture(b)
			var d *dispatch.Dispatcher
			if execute {
				d = start(b, st, f, nil)
			} else {
				var err error
				d, err = dispatch.New(dispatch.Config{Store: st, Registry: f.reg, Logger: quietLogger(), Node: dispatch.NodeConfig{ID: "api"}})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = d.Close(context.Background()) })
			}
			inputs := json.RawMessage(`{"message":"hi"}`)
			b.SetParallelism(32) // goroutines per GOMAXPROCS
			b.ResetTimer()
			began := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := d.Submit(context.Background(), dispatch.SubmitRequest{Task: f.echo, Inputs: inputs, Caller: alice}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(began)
			b.StopTimer()
			grouped := float64(b.N) / elapsed.Seconds()

			baseline := bareInserts(b, st, min(b.N, 3000))
			b.ReportMetric(grouped, "runs/s")
			b.ReportMetric(baseline, "baseline-runs/s")
			b.ReportMetric(grouped/baseline, "x-baseline")
		}
	}
}

// bareInserts inserts n runs, one per transaction, from 64 goroutines, and
// returns runs per second.
func bareInserts(b *testing.B, st store.Store, n int) float64 {
	var next atomic.Int64
	began := time.Now()
	done := make(chan struct{})
	const workers = 64
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for next.Add(1) <= int64(n) {
				_, err := st.CreateRuns(context.Background(), []store.NewRun{{
					Name: fmt.Sprintf("bare%d-%d", time.Now().UnixNano(), next.Load()), Project: "demo", Domain: "development",
					Task: "echo", Version: "v", Caller: store.Caller{Subject: "alice"}, Inputs: json.RawMessage(`{"message":"hi"}`),
					CreatedAt: time.Now(),
				}})
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for range workers {
		<-done
	}
	return float64(n) / time.Since(began).Seconds()
}

// BenchmarkSubmitToRunning measures, on an idle node, the time from calling
// Submit to the task function starting (the run recorded as running
// first), one run at a time.
func BenchmarkSubmitToRunning(b *testing.B) {
	for name, open := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			f := newFixture(b)
			started := make(chan time.Time, 1)
			probe := tasks.MustDefine("demo", "development", "probe", func(ctx context.Context, in struct{}) (struct{}, error) {
				started <- time.Now()
				return struct{}{}, nil
			}, nil)
			f.reg.MustRegister(probe)
			d := start(b, open(b), f, nil)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				run, _, err := d.Submit(context.Background(), dispatch.SubmitRequest{Task: probe.Definition(), Inputs: json.RawMessage(`{}`), Caller: alice})
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, (<-started).Sub(t0))
				if _, err := d.Wait(context.Background(), run.Name); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
