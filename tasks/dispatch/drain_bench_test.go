package dispatch_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
)

// BenchmarkBacklogDrain measures how fast an all-in-one process drains a
// backlog of queued no-op runs, per backlog size: the runs are committed
// first by a dispatcher that only accepts them (its scheduler never
// starts), then a RoleAll dispatcher starts on the same store, with a node
// whose declared CPU holds thousands of the 10m runs at once, so slots are
// not the limit. runs/s that falls as the backlog grows means a per-step
// cost that grows with the queue (issue 19). Run it with -benchtime=1x.
func BenchmarkBacklogDrain(b *testing.B) {
	for name, open := range benchStores(b) {
		for _, size := range []struct {
			name string
			n    int
		}{{"2k", 2000}, {"10k", 10000}, {"50k", 50000}} {
			b.Run(name+"/"+size.name, func(b *testing.B) {
				var drained int
				var took time.Duration
				for range b.N {
					b.StopTimer()
					d := benchDrain(b, open(b), size.n)
					b.StartTimer()
					drained, took = drained+size.n, took+d
				}
				b.ReportMetric(float64(drained)/took.Seconds(), "runs/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// finishCounter is an Observer that counts succeeded runs.
type finishCounter struct {
	succeeded atomic.Int64
	all       chan struct{}
	want      int64
}

func (*finishCounter) RunSubmitted(string)                          {}
func (*finishCounter) RunStarted(string, time.Duration)             {}
func (*finishCounter) AttemptEnded(string, dispatch.AttemptOutcome) {}
func (*finishCounter) Placed(time.Duration, int)                    {}
func (*finishCounter) Committed(string, int, time.Duration)         {}
func (c *finishCounter) RunFinished(_ string, p tasks.Phase, _ time.Duration) {
	if p == tasks.PhaseSucceeded && c.succeeded.Add(1) == c.want {
		close(c.all)
	}
}

// benchDrain queues n runs on st, then starts an all-in-one dispatcher on
// it and returns how long it took to run them all.
func benchDrain(b *testing.B, st store.Store, n int) time.Duration {
	reg := tasks.NewRegistry()
	tick := tasks.MustDefine("demo", "development", "tick", func(ctx context.Context, in struct{}) (struct{}, error) {
		return struct{}{}, nil
	}, &tasks.Options{Resources: tasks.Resources{CPU: "10m"}})
	reg.MustRegister(tick)

	api, err := dispatch.New(dispatch.Config{Store: st, Registry: reg, Logger: quietLogger(), Node: dispatch.NodeConfig{ID: "api"}})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	done := make(chan struct{})
	const workers = 256
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for next.Add(1) <= int64(n) {
				if _, _, err := api.Submit(context.Background(), dispatch.SubmitRequest{Task: tick.Definition(), Inputs: json.RawMessage(`{}`), Caller: alice}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for range workers {
		<-done
	}
	if err := api.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	if b.Failed() {
		b.FailNow()
	}

	obs := &finishCounter{all: make(chan struct{}), want: int64(n)}
	began := time.Now()
	d, err := dispatch.New(dispatch.Config{
		Store: st, Registry: reg, Logger: quietLogger(), Observer: obs,
		Node: dispatch.NodeConfig{ID: "node-1", MilliCPU: 64000, MemoryBytes: 64 << 30},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	}()
	// Bounded, so that a drain that stalls (or crawls) fails the size
	// instead of running for ever.
	select {
	case <-obs.all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("drained %d of %d runs in 5 minutes", obs.succeeded.Load(), n)
	}
	return time.Since(began)
}
