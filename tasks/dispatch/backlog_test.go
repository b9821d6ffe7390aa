package dispatch_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
)

// A backlog that drains without pause is not recorded
// waiting_for_resources run by run: that is one write per waiting run, most
// of a large backlog's drain (issue 19). Runs are recorded waiting once the
// queue stops moving (TestAbort's "waiting run aborts at once").
func TestMovingBacklogRecordsNoWaits(t *testing.T) {
	st := openStore(t, t.TempDir())
	f := newFixture(t)
	tick := tasks.MustDefine("demo", "development", "tick", func(ctx context.Context, in struct{}) (struct{}, error) {
		return struct{}{}, nil
	}, &tasks.Options{Resources: tasks.Resources{CPU: "100m"}})
	f.reg.MustRegister(tick)

	// Queued by a process whose scheduler never starts.
	api, err := dispatch.New(dispatch.Config{Store: st, Registry: f.reg, Logger: quietLogger(), Node: dispatch.NodeConfig{ID: "api"}})
	require.NoError(t, err)
	var names []string
	for range 40 {
		run, _, err := api.Submit(context.Background(), dispatch.SubmitRequest{Task: tick.Definition(), Inputs: json.RawMessage(`{}`), Caller: alice})
		require.NoError(t, err)
		names = append(names, run.Name)
	}
	require.NoError(t, api.Close(context.Background()))

	// Four slots: ten rounds at least, each binding as runs end.
	d := start(t, st, f, func(c *dispatch.Config) { c.Node.MilliCPU = 400 })
	for _, name := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		run, err := d.Wait(ctx, name)
		cancel()
		require.NoError(t, err)
		require.Equal(t, tasks.PhaseSucceeded, run.Phase)
		evs, err := st.Events(context.Background(), name, 0)
		require.NoError(t, err)
		for _, ev := range evs {
			require.NotEqual(t, tasks.PhaseWaitingForResources, ev.Phase, "run %s", name)
		}
	}
}

// getRunCounter is a store that counts GetRun.
type getRunCounter struct {
	store.Store
	n atomic.Int64
}

func (s *getRunCounter) GetRun(ctx context.Context, name string) (*store.StoredRun, error) {
	s.n.Add(1)
	return s.Store.GetRun(ctx, name)
}

// An all-in-one process reads none of the runs it binds to its own node
// back: its leader hands them to its agent, which skips their binding's
// notification, published to the process at commit, before the hand-off
// (a read per run, issue 19).
func TestLocalBindingsNotReadBack(t *testing.T) {
	st := &getRunCounter{Store: openStore(t, t.TempDir())}
	f := newFixture(t)
	tick := tasks.MustDefine("demo", "development", "tick", func(ctx context.Context, in struct{}) (struct{}, error) {
		return struct{}{}, nil
	}, &tasks.Options{Resources: tasks.Resources{CPU: "100m"}})
	f.reg.MustRegister(tick)
	api, err := dispatch.New(dispatch.Config{Store: st, Registry: f.reg, Logger: quietLogger(), Node: dispatch.NodeConfig{ID: "api"}})
	require.NoError(t, err)
	const n = 100
	for range n {
		_, _, err := api.Submit(context.Background(), dispatch.SubmitRequest{Task: tick.Definition(), Inputs: json.RawMessage(`{}`), Caller: alice})
		require.NoError(t, err)
	}
	require.NoError(t, api.Close(context.Background()))

	obs := &finishCounter{all: make(chan struct{}), want: n}
	start(t, st, f, func(c *dispatch.Config) { c.Observer = obs })
	select {
	case <-obs.all:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d of %d runs succeeded", obs.succeeded.Load(), n)
	}
	require.Zero(t, st.n.Load(), "runs read back")
}
