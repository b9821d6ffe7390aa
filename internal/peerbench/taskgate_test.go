package peerbench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/postgres/pgtest"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// taskgateSystem is a store with a no-op task, and a dispatcher on it that
// only accepts runs (the API role); work starts an all-in-one one.
type taskgateSystem struct {
	st   store.Store
	reg  *tasks.Registry
	tick *tasks.Definition
	api  *dispatch.Dispatcher
}

var (
	caller = identity.Identity{Subject: "bencher"}
	inputs = json.RawMessage(`{}`)
)

func newTaskgate(b *testing.B, st store.Store) system {
	reg := tasks.NewRegistry()
	// 10m of CPU: a node of 64 declared cores holds 6,400 at once, so
	// slots are not the limit.
	tick := tasks.MustDefine("demo", "development", "tick", func(context.Context, struct{}) (struct{}, error) {
		return struct{}{}, nil
	}, &tasks.Options{Resources: tasks.Resources{CPU: "10m"}})
	reg.MustRegister(tick)
	api, err := dispatch.New(dispatch.Config{Store: st, Registry: reg, Logger: quiet(), Node: dispatch.NodeConfig{ID: "api"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = api.Close(context.Background()) })
	return &taskgateSystem{st: st, reg: reg, tick: tick.Definition(), api: api}
}

func (s *taskgateSystem) insert(ctx context.Context) error {
	_, _, err := s.api.Submit(ctx, dispatch.SubmitRequest{Task: s.tick, Inputs: inputs, Caller: caller})
	return err
}

// fill submits through the accepting dispatcher from callers goroutines,
// whose submits its group commit batches, then closes it, as an API
// process would hand the backlog over to the scheduler.
func (s *taskgateSystem) fill(ctx context.Context, n int) error {
	var next atomic.Int64
	errs := make(chan error, callers)
	for range callers {
		go func() {
			for next.Add(1) <= int64(n) {
				if err := s.insert(ctx); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range callers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return first
	}
	return s.api.Close(ctx)
}

func (s *taskgateSystem) work(ctx context.Context, n int) error {
	obs := &finished{all: make(chan struct{}), want: int64(n)}
	d, err := dispatch.New(dispatch.Config{
		Store: s.st, Registry: s.reg, Logger: quiet(), Observer: obs,
		Node: dispatch.NodeConfig{ID: "node-1", MilliCPU: 64000, MemoryBytes: 64 << 30},
	})
	if err != nil {
		return err
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(stop)
	}()
	select {
	case <-obs.all:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("taskgate finished %d of %d runs: %w", obs.succeeded.Load(), n, ctx.Err())
	}
}

// finished is a dispatch.Observer that closes all when want runs have
// succeeded.
type finished struct {
	succeeded atomic.Int64
	all       chan struct{}
	want      int64
}

func (*finished) RunSubmitted(string)                          {}
func (*finished) RunStarted(string, time.Duration)             {}
func (*finished) AttemptEnded(string, dispatch.AttemptOutcome) {}
func (*finished) Placed(time.Duration, int)                    {}
func (*finished) Committed(string, int, time.Duration)         {}
func (f *finished) RunFinished(_ string, p tasks.Phase, _ time.Duration) {
	if p == tasks.PhaseSucceeded && f.succeeded.Add(1) == f.want {
		close(f.all)
	}
}

// taskgateSQLite opens taskgate's SQLite store (WAL, synchronous=FULL) on a
// fresh file.
func taskgateSQLite(b *testing.B) system {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "taskgate.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	return newTaskgate(b, st)
}

// taskgatePostgres opens taskgate's PostgreSQL store in a fresh schema of
// the test database, with a pool of maxConns connections.
func taskgatePostgres(b *testing.B) system {
	return newTaskgate(b, pgtest.Open(b, "taskgate", "the peer benchmarks", maxConns))
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
