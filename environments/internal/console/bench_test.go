package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// seedRuns writes n ended runs of the quickstart's tasks into the SQLite
// store under dir, a tenth of them alice's and the rest bob's and
// root's, as if they had run over the last day.
func seedRuns(b *testing.B, dir string, n int) {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "taskgate.db"))
	require.NoError(b, err)
	defer st.Close()
	owners := []string{"alice", "bob", "root", "bob", "root", "bob", "root", "bob", "root", "bob"}
	phases := []tasks.Phase{tasks.PhaseSucceeded, tasks.PhaseSucceeded, tasks.PhaseSucceeded, tasks.PhaseFailed, tasks.PhaseAborted}
	start := time.Now().Add(-24 * time.Hour)
	for i := 0; i < n; i += 1000 {
		var batch []store.NewRun
		var ts []store.Transition
		for j := i; j < min(i+1000, n); j++ {
			name := fmt.Sprintf("seed%06d", j)
			at := start.Add(time.Duration(j) * 24 * time.Hour / time.Duration(n))
			batch = append(batch, store.NewRun{
				Name: name, Project: "demo", Domain: "development", Task: "echo", Version: "v1",
				Caller: store.Caller{Subject: owners[j%len(owners)]}, Inputs: json.RawMessage(`{"message":"hi"}`), CreatedAt: at,
			})
			ts = append(ts, store.Transition{Run: name, To: phases[j%len(phases)], At: at.Add(time.Second), Outputs: json.RawMessage(`{"message":"hi"}`)})
		}
		_, err := st.CreateRuns(ctx, batch)
		require.NoError(b, err)
		_, err = st.Transition(ctx, ts)
		require.NoError(b, err)
	}
}

// BenchmarkPages loads each console page as a browser does, with 10,000
// runs in the SQLite store: the page's HTML, then the API calls its
// script makes first (as the admin, who sees everyone's runs). GET
// /health, measured in the same run, is the floor of one request over
// loopback.
func BenchmarkPages(b *testing.B) {
	dir := b.TempDir()
	seedRuns(b, dir, 10_000)
	s := envtest.NewStackEnv(b, map[string]string{"TASKGATE_DATA_DIR": dir})
	r := s.Do(http.MethodPost, "/run-task/demo/development/echo", envtest.WhAdmin, `{"message":"bench"}`, "Prefer", "wait=10")
	require.Equal(b, http.StatusOK, r.Status, r.Raw)
	run := r.Body["name"].(string)
	all := s.Do(http.MethodGet, "/runs?all=true&limit=200&phase=failed", envtest.WhAdmin, "")
	require.Len(b, all.Body["runs"], 200, "the seeded runs are there")
	require.NotEmpty(b, all.Body["next_cursor"])
	pages := []struct {
		name  string
		paths []string
	}{
		{"health", []string{"/health"}},
		{"runs", []string{"/console/runs", "/tasks", "/runs?limit=50&all=true"}},
		{"runs-filtered", []string{"/console/runs", "/tasks", "/runs?limit=50&all=true&phase=failed&task=demo/development/echo"}},
		{"run", []string{"/console/run/" + run, "/run/" + run, "/run/" + run + "/io", "/run/" + run + "/logs"}},
		{"tasks", []string{"/console/tasks", "/tasks", "/task/demo/development/echo", "/task/demo/development/sleep", "/task/demo/development/flaky", "/task/demo/development/train"}},
		{"nodes", []string{"/console/nodes", "/nodes", "/console/charts/gpus.svg"}},
		{"queue", []string{"/console/queue", "/queue", "/runs?limit=200&phase=queued,waiting_for_resources&all=true", "/console/charts/queue.svg"}},
		{"charts", []string{"/console/charts", "/console/charts/runs.svg", "/console/charts/queue.svg", "/console/charts/gpus.svg"}},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				for _, path := range p.paths {
					resp, _ := get(b, s.Base, path, envtest.WhAdmin)
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("%s: %d", path, resp.StatusCode)
					}
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/page")
		})
	}
}
