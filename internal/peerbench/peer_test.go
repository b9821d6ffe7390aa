package peerbench

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// callers is how many goroutines insert (or submit) at once, each one
	// job (run) per call.
	callers = 64
	// inserts is how many jobs (runs) each system takes per op of
	// BenchmarkInsert.
	inserts = 10_000
	// backlog is how many queued jobs (runs) each system works off per op
	// of BenchmarkWork.
	backlog = 20_000
	// riverWorkers is River's MaxWorkers on the queue of the backlog.
	riverWorkers = 100
	// maxConns bounds each PostgreSQL pool, River's and taskgate's alike.
	maxConns = 16
	// drainLimit fails an op whose backlog stalls instead of waiting for
	// ever.
	drainLimit = 5 * time.Minute
)

// system is one queue on one fresh database, as the benchmarks drive it.
type system interface {
	// insert takes one job (run) durably, as one caller would.
	insert(ctx context.Context) error
	// fill queues n jobs (runs) without working them, as fast as it can:
	// the set-up of a backlog, not measured.
	fill(ctx context.Context, n int) error
	// work starts working the queued jobs and returns once n of them have
	// completed.
	work(ctx context.Context, n int) error
}

// opener opens a system on a fresh database, closed when b ends.
type opener func(b *testing.B) system

// stores lists each store's River and taskgate openers: SQLite always,
// PostgreSQL when TASKGATE_TEST_POSTGRES_URL is set.
func stores(b *testing.B) []struct {
	name            string
	river, taskgate opener
} {
	list := []struct {
		name            string
		river, taskgate opener
	}{{"sqlite", riverSQLite, taskgateSQLite}}
	if postgresURL() == "" {
		b.Log("TASKGATE_TEST_POSTGRES_URL is unset: PostgreSQL benchmarks skipped")
		return list
	}
	return append(list, struct {
		name            string
		river, taskgate opener
	}{"postgres", riverPostgres, taskgatePostgres})
}

// BenchmarkInsert measures durable inserts per second with 64 concurrent
// callers, each inserting one job per transaction: River's Client.Insert
// beside taskgate's Dispatcher.Submit (a dispatcher that only accepts, the
// API role; its group commit shares fsyncs between callers). Run it with
// -benchtime=1x and -count.
func BenchmarkInsert(b *testing.B) {
	for _, st := range stores(b) {
		b.Run(st.name, func(b *testing.B) {
			compare(b, func(open opener) float64 {
				sys := open(b)
				return float64(inserts) / concurrently(b, inserts, sys.insert).Seconds()
			}, st.river, st.taskgate)
		})
	}
}

// BenchmarkWork measures how fast a backlog of 20,000 queued no-op jobs is
// worked off: River with 100 workers on the queue, beside an all-in-one
// taskgate dispatcher whose node declares enough CPU that slots are not
// the limit (as tasks/dispatch's BenchmarkBacklogDrain does). The clock
// runs from starting the worker to the last completion being recorded.
// Run it with -benchtime=1x and -count.
func BenchmarkWork(b *testing.B) {
	for _, st := range stores(b) {
		b.Run(st.name, func(b *testing.B) {
			compare(b, func(open opener) float64 {
				sys := open(b)
				if err := sys.fill(context.Background(), backlog); err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), drainLimit)
				defer cancel()
				began := time.Now()
				if err := sys.work(ctx, backlog); err != nil {
					b.Fatal(err)
				}
				return float64(backlog) / time.Since(began).Seconds()
			}, st.river, st.taskgate)
		})
	}
}

// compare runs measure (a rate: River's jobs/s, taskgate's runs/s) on
// River, then on taskgate, b.N times, and reports each one's mean rate and
// the ratio taskgate÷River of the sums.
func compare(b *testing.B, measure func(opener) float64, river, taskgate opener) {
	var r, t float64
	for range b.N {
		b.StopTimer()
		r += measure(river)
		t += measure(taskgate)
		b.StartTimer()
	}
	b.ReportMetric(r/float64(b.N), "river-jobs/s")
	b.ReportMetric(t/float64(b.N), "taskgate-runs/s")
	b.ReportMetric(t/r, "x-river")
	b.ReportMetric(0, "ns/op")
}

// concurrently calls call n times from callers goroutines and returns how
// long that took.
func concurrently(b *testing.B, n int, call func(context.Context) error) time.Duration {
	var next atomic.Int64
	done := make(chan struct{})
	began := time.Now()
	for range callers {
		go func() {
			defer func() { done <- struct{}{} }()
			for next.Add(1) <= int64(n) {
				if err := call(context.Background()); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for range callers {
		<-done
	}
	took := time.Since(began)
	if b.Failed() {
		b.FailNow()
	}
	return took
}
