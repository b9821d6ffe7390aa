package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

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

// testListRunsFilters pages through every combination of the filters
// (owner, task, none, one or several phases, a repeated phase, creation
// time windows) and checks each page against the runs picked out by hand:
// the store merges one index range per phase, and the merge must keep seq
// order across pages. The runs are created 100 ms apart, but every third
// one 250 ms earlier than its place, which the store moves forward
// (CreateResult.CreatedAt); windows start and end at each run.
func testListRunsFilters(t *testing.T, s store.Store) {
	ctx := context.Background()
	ends := []tasks.Phase{"", tasks.PhaseWaitingForResources, tasks.PhaseSucceeded, tasks.PhaseFailed, tasks.PhaseAborted}
	var runs []store.NewRun
	for i := range 40 {
		runs = append(runs, newRun(func(r *store.NewRun) {
			if i%3 == 0 {
				r.Caller.Subject = "bob"
			}
			if i%4 == 0 {
				r.Task = "sleep"
			}
			r.CreatedAt = createdAt(i)
		}))
	}
	res := create(t, s, runs...)
	type row struct {
		name, owner, task string
		phase             tasks.Phase
		created           time.Time
	}
	rows := make([]row, len(runs))
	for i, r := range runs {
		rows[i] = row{r.Name, r.Caller.Subject, "demo/development/" + r.Task, tasks.PhaseQueued, res[i].CreatedAt}
		require.True(t, i == 0 || res[i].Seq > res[i-1].Seq, "seqs in order of the batch")
		// Every third run was created before the one ahead of it in the
		// batch: the store moves it forward, keeping creation times in
		// seq order.
		require.Equal(t, max(r.CreatedAt.UnixNano(), rows[max(i-1, 0)].created.UnixNano()), res[i].CreatedAt.UnixNano(), "run %d", i)
		if to := ends[i*7%len(ends)]; to != "" {
			apply(t, s, store.Transition{Run: r.Name, To: to, At: t0, WaitReason: "busy"})
			rows[i].phase = to
		}
	}
	names, created := make([]string, len(rows)), make([]time.Time, len(rows))
	for i, r := range rows {
		names[i], created[i] = r.name, r.created
	}
	checkWindows(t, s, names, created)
	for _, owner := range []string{"", "bob"} {
		for _, task := range []string{"", "demo/development/sleep"} {
			for _, ps := range [][]tasks.Phase{nil, {tasks.PhaseQueued}, {tasks.PhaseFailed, tasks.PhaseQueued, tasks.PhaseFailed}, tasks.Phases} {
				for _, win := range [][2]time.Time{{}, {createdAt(9), {}}, {{}, createdAt(30)}, {createdAt(12), createdAt(27)}} {
					f := store.RunFilter{Owner: owner, Task: task, Phases: ps, CreatedAfter: win[0], CreatedBefore: win[1], Limit: 3}
					t.Run(fmt.Sprintf("owner=%s,task=%s,phases=%v,window=%v", owner, task, ps, win), func(t *testing.T) {
						var want, got []string
						for i := len(rows) - 1; i >= 0; i-- {
							r := rows[i]
							if (owner == "" || r.owner == owner) && (task == "" || r.task == task) && (ps == nil || slices.Contains(ps, r.phase)) &&
								(win[0].IsZero() || !r.created.Before(win[0])) && (win[1].IsZero() || r.created.Before(win[1])) {
								want = append(want, r.name)
							}
						}
						for {
							page, err := s.ListRuns(ctx, f)
							require.NoError(t, err)
							for _, r := range page {
								got = append(got, r.Name)
								f.BeforeSeq = r.Seq
							}
							if len(page) < f.Limit {
								break
							}
						}
						if win == [2]time.Time{} {
							require.NotEmpty(t, want)
						}
						require.Equal(t, want, got)
					})
				}
			}
		}
	}
}

// checkWindows checks a window that starts, and one that ends, at each
// run's creation time (names and created: every run s holds, in seq
// order, at most 100): each lists the runs created in it, newest first.
// The edges the store finds by binary search must hold every run of the
// window, ties included.
func checkWindows(t *testing.T, s store.Store, names []string, created []time.Time) {
	t.Helper()
	for _, at := range created {
		for _, f := range []store.RunFilter{{CreatedAfter: at}, {CreatedBefore: at}} {
			want := []string{}
			for i := len(created) - 1; i >= 0; i-- {
				if (f.CreatedAfter.IsZero() || !created[i].Before(at)) && (f.CreatedBefore.IsZero() || created[i].Before(at)) {
					want = append(want, names[i])
				}
			}
			runs, err := s.ListRuns(context.Background(), f)
			require.NoError(t, err)
			got := []string{}
			for _, r := range runs {
				got = append(got, r.Name)
			}
			require.Equal(t, want, got, "after %v, before %v", f.CreatedAfter, f.CreatedBefore)
		}
	}
}

// createdAt is when testListRunsFilters's run i was created: 100 ms
// apart, every third 250 ms early.
func createdAt(i int) time.Time {
	at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
	if i%3 == 2 {
		at = at.Add(-250 * time.Millisecond)
	}
	return at
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
	counts, err := s.CountActiveRuns(ctx)
	require.NoError(t, err)
	require.Equal(t, map[tasks.Phase]int{tasks.PhaseQueued: 2, tasks.PhaseInitializing: 1}, counts)
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
	bound, err := s.BoundRuns(ctx, "n1")
	require.NoError(t, err)
	require.Equal(t, []store.BoundRun{{Name: b.Name, Attempt: onNode[0].Attempt, Phase: tasks.PhaseInitializing}}, bound)
	_, err = s.RequestAbort(ctx, b.Name, "stop", t0)
	require.NoError(t, err)
	bound, err = s.BoundRuns(ctx, "n1")
	require.NoError(t, err)
	require.Equal(t, []store.BoundRun{{Name: b.Name, Attempt: onNode[0].Attempt, Phase: tasks.PhaseInitializing,
		AbortRequested: true, AbortReason: "stop"}}, bound)
	none, err := s.BoundRuns(ctx, "n2")
	require.NoError(t, err)
	require.Empty(t, none)

	q, err := s.QueuedRunsAfter(ctx, res[0].Seq, 10)
	require.NoError(t, err)
	require.Len(t, q, 1)
	require.Equal(t, d.Name, q[0].Name)
}
