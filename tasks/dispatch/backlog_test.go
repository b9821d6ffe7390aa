package dispatch_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
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
