package dispatch_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
)

// outage refuses every phase change while down, with the error a database
// on a full disk gives.
type outage struct {
	store.Store
	down        atomic.Bool
	transitions atomic.Int64
}

func (s *outage) Transition(ctx context.Context, ts []store.Transition) ([]store.TransitionResult, error) {
	s.transitions.Add(1)
	if s.down.Load() {
		return nil, fmt.Errorf("commit: %w: database or disk is full (13)", store.ErrDiskFull)
	}
	return s.Store.Transition(ctx, ts)
}

// lineCount is a slog.Handler that counts what a production logger prints.
type lineCount struct{ n atomic.Int64 }

func (h *lineCount) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *lineCount) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h *lineCount) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *lineCount) WithGroup(string) slog.Handler                { return h }

// TestStoreOutageIsWaitedOut: while the store refuses phase changes, the
// leader tries its bindings again after a growing wait (not at once, which
// made thousands of tries and log lines a second), the agent likewise the
// outcome of a run that ends meanwhile, and each logs the failure once;
// when the store is back, the runs start (or end) and succeed.
func TestStoreOutageIsWaitedOut(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := &outage{Store: openStore(t, t.TempDir())}
	lines := &lineCount{}
	d := start(t, st, f, func(c *dispatch.Config) { c.Logger = slog.New(lines) })
	ending := submit(t, d, f.sleep, `{"seconds":0.5}`)
	waitPhase(t, d, ending.Name, tasks.PhaseRunning)
	st.down.Store(true)
	lines0 := lines.n.Load()
	runs := []*tasks.Run{ending}
	for range 5 {
		runs = append(runs, submit(t, d, f.echo, `{"message":"hi"}`))
	}
	time.Sleep(2 * time.Second)
	tries, logged := st.transitions.Load(), lines.n.Load()-lines0
	st.down.Store(false)
	t.Logf("2 s of outage: %d phase changes tried, %d lines logged", tries, logged)
	require.Less(t, tries, int64(30))
	require.Less(t, logged, int64(5))
	for _, r := range runs {
		require.Equal(t, tasks.PhaseSucceeded, wait(t, d, r.Name).Phase)
	}
}
