package storetest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

func testListRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	var all []store.NewRun
	for i := range 7 {
		all = append(all, newRun(func(r *store.NewRun) {
			if i%2 == 1 {
				r.Caller.Subject = "bob"
			}
			if i == 6 {
				r.Task = "sleep"
			}
		}))
	}
	create(t, s, all...)
	apply(t, s, store.Transition{Run: all[0].Name, To: tasks.PhaseAborted, At: t0})

	// Pages of two, newest first, for alice (runs 0, 2, 4, 6).
	var seen []string
	var before int64
	for {
		page, err := s.ListRuns(ctx, store.RunFilter{Owner: "alice", BeforeSeq: before, Limit: 2})
		require.NoError(t, err)
		for _, r := range page {
			seen = append(seen, r.Name)
			before = r.Seq
		}
		if len(page) < 2 {
			break
		}
	}
	require.Equal(t, []string{all[6].Name, all[4].Name, all[2].Name, all[0].Name}, seen)

	tests := []struct {
		name string
		f    store.RunFilter
		want []string
	}{
		{"phase", store.RunFilter{Phases: []tasks.Phase{tasks.PhaseAborted}}, []string{all[0].Name}},
		{"task", store.RunFilter{Task: "demo/development/sleep"}, []string{all[6].Name}},
		{"owner and phase", store.RunFilter{Owner: "bob", Phases: []tasks.Phase{tasks.PhaseQueued, tasks.PhaseRunning}}, []string{all[5].Name, all[3].Name, all[1].Name}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runs, err := s.ListRuns(ctx, tc.f)
			require.NoError(t, err)
			var names []string
			for _, r := range runs {
				names = append(names, r.Name)
			}
			require.Equal(t, tc.want, names)
		})
	}
	_, err := s.ListRuns(ctx, store.RunFilter{Task: "bad"})
	require.Error(t, err)
}

func testActiveAndQueued(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b, c, d := newRun(nil), newRun(nil), newRun(nil), newRun(nil)
	res := create(t, s, a, b, c, d)
	apply(t, s, store.Transition{Run: b.Name, To: tasks.PhaseInitializing, At: t0, Bind: &store.Binding{Node: "n1"}})
	apply(t, s, store.Transition{Run: c.Name, To: tasks.PhaseFailed, At: t0})

	active, err := s.ActiveRuns(ctx, "")
	require.NoError(t, err)
	require.Len(t, active, 3)
	placements, err := s.ActivePlacements(ctx)
	require.NoError(t, err)
	require.Len(t, placements, len(active))
	for i, r := range active {
		require.Equal(t, store.Placement{Name: r.Name, Seq: r.Seq, Project: r.Project, Domain: r.Domain, Task: r.Task,
			Phase: r.Phase, Priority: r.Priority, Attempt: r.Attempt, Node: r.Node, Devices: r.Devices, NotBefore: r.NotBefore}, placements[i])
	}
	onNode, err := s.ActiveRuns(ctx, "n1")
	require.NoError(t, err)
	require.Len(t, onNode, 1)
	require.Equal(t, b.Name, onNode[0].Name)

	q, err := s.QueuedRunsAfter(ctx, res[0].Seq, 10)
	require.NoError(t, err)
	require.Len(t, q, 1)
	require.Equal(t, d.Name, q[0].Name)
}
