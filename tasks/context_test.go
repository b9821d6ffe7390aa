package tasks_test

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
)

func TestProgressReachesTheReporterOfTheContext(t *testing.T) {
	t.Parallel()
	tasks.Progress(context.Background(), 1, 2, "no reporter: nothing happens")

	var got []tasks.ProgressReport
	ctx := tasks.WithProgressReporter(context.Background(), func(p tasks.ProgressReport) { got = append(got, p) })
	tasks.Progress(ctx, 3, 10, "epoch 3")
	tasks.Progress(ctx, 4, 0, "")
	for _, bad := range [][2]float64{{-1, 10}, {1, -1}, {math.NaN(), 10}, {1, math.Inf(1)}} {
		tasks.Progress(ctx, bad[0], bad[1], "dropped")
	}
	require.Equal(t, []tasks.ProgressReport{{Done: 3, Total: 10, Message: "epoch 3"}, {Done: 4}}, got)
}
