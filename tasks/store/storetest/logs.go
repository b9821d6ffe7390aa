package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

func testLogs(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRun(nil)
	create(t, s, r)
	lines := []store.LogLine{
		{Run: r.Name, Attempt: 1, At: t0, Level: "INFO", Message: "one", Attrs: json.RawMessage(`{"k":1}`)},
		{Run: r.Name, Attempt: 1, At: t0.Add(time.Millisecond), Level: "WARN", Message: "two"},
		{Run: r.Name, Attempt: 2, At: t0.Add(2 * time.Millisecond), Level: "INFO", Stream: store.StreamStderr, Message: "three"},
	}
	require.NoError(t, s.AppendLogs(ctx, lines))
	got, err := s.Logs(ctx, r.Name)
	require.NoError(t, err)
	require.Len(t, got, 3)
	for i := range got {
		if i > 0 {
			require.Greater(t, got[i].Seq, got[i-1].Seq, "Seq grows in the order lines were written")
		}
		lines[i].Seq = got[i].Seq
	}
	lines[0].Stream, lines[1].Stream = store.StreamLog, store.StreamLog // empty is the logger's
	require.Equal(t, lines, got)

	after, err := s.LogsAfter(ctx, r.Name, got[0].Seq, 1)
	require.NoError(t, err)
	require.Equal(t, got[1:2], after)
	after, err = s.LogsAfter(ctx, r.Name, got[2].Seq, 10)
	require.NoError(t, err)
	require.Empty(t, after)
}

// testProgress: SetProgress keeps the latest report of the run's current
// attempt, shown on reads; an ended attempt's late write is skipped.
func testProgress(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRun(nil)
	create(t, s, r)
	require.Nil(t, get(t, s, r.Name).Progress, "no progress until the task reports")
	apply(t, s, store.Transition{Run: r.Name, To: tasks.PhaseRunning, At: t0, Bind: &store.Binding{Node: "n1"}, Start: true})

	p := tasks.RunProgress{ProgressReport: tasks.ProgressReport{Done: 3, Total: 10, Message: "epoch 3"}, UpdatedAt: t0}
	require.NoError(t, s.SetProgress(ctx, []store.ProgressUpdate{
		{Run: r.Name, Attempt: 1, Progress: p},
		{Run: r.Name, Attempt: 7, Progress: tasks.RunProgress{ProgressReport: tasks.ProgressReport{Done: 9}, UpdatedAt: t0}},
	}))
	require.Equal(t, &p, get(t, s, r.Name).Progress)
	runs, err := s.ListRuns(ctx, store.RunFilter{})
	require.NoError(t, err)
	var listed *tasks.RunProgress
	for _, lr := range runs {
		if lr.Name == r.Name {
			listed = lr.Progress
		}
	}
	require.Equal(t, &p, listed)
}
