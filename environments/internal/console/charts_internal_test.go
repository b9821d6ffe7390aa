package console

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
)

func TestChartsDrawWhatTheSamplerHolds(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 30, 0, time.UTC)
	m := now.Unix() / 60
	snap := Snapshot{
		Now:   now,
		Ended: map[int64]map[tasks.Phase]int{m: {tasks.PhaseSucceeded: 3, tasks.PhaseFailed: 1}, m - 90: {tasks.PhaseSucceeded: 7}},
		Samples: []Sample{
			{At: now.Add(-2 * time.Hour), Waiting: 9, GPUs: map[string]int{"A100": 2}, GPUsInUse: map[string]int{"A100": 2}},
			{At: now.Add(-10 * time.Minute), Waiting: 4, GPUs: map[string]int{"A100": 2, "H100 MIG 1g.10gb": 7}, GPUsInUse: map[string]int{"A100": 1}},
		},
	}
	var b strings.Builder
	drawRuns(&b, snap)
	runs := b.String()
	// An hour back only: the minute 90 minutes ago is not drawn.
	require.Contains(t, runs, "4 runs ended in the last hour.")
	require.Contains(t, runs, "<title>3 succeeded</title>")
	require.Contains(t, runs, "<title>1 failed</title>")
	require.NotContains(t, runs, "<title>7 succeeded</title>")

	b.Reset()
	drawQueue(&b, snap)
	queue := b.String()
	require.Contains(t, queue, "4 runs waiting now")
	// A step from 9 (held from before the window) down to 4 until now.
	require.Equal(t, 1, strings.Count(queue, "<polyline"))

	b.Reset()
	drawGPUs(&b, snap)
	gpus := b.String()
	require.Contains(t, gpus, "In use now: A100 1 of 2, H100 MIG 1g.10gb 0 of 7.")
	require.Equal(t, 2, strings.Count(gpus, "<polyline"))
	for _, svg := range []string{runs, queue, gpus} {
		require.True(t, strings.HasPrefix(svg, "<svg ") && strings.HasSuffix(svg, "</svg>"))
	}
}

func TestNiceTop(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]int{0: 4, 3: 4, 5: 8, 17: 20, 21: 50, 99: 100, 101: 200, 450: 500, 900: 1000} {
		require.Equal(t, want, niceTop(n), n)
	}
}
