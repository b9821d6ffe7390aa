package systemtest

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestRestartedServerSchedulesAtOnce kills the single-process quickstart
// (SQLite) just after it took the scheduler lease, restarts it on the same
// data dir, and submits a run with Prefer: wait=2. Nothing else can hold
// the lease of a single-process deployment, so the restarted process
// should schedule at once rather than wait for its dead predecessor's
// lease to expire (LeaseTTL, 5 s by default).
func TestRestartedServerSchedulesAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("restart test: builds the quickstart and SIGKILLs it; skipped in -short")
	}
	bin := quickstart(t)
	srv := newProc(t, "quickstart", bin, freeAddr(t), map[string]string{
		"TASKGATE_DATA_DIR":    t.TempDir(),
		"TASKGATE_AUTH_TOKENS": crashToken + "=crasher:admins",
		"TASKGATE_NODE_ID":     "restart-node",
	})
	srv.mustStart()
	c := newClient(srv.base(), crashToken)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Kill it as soon as it leads: its lease has nearly a full TTL left.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var q struct {
			Leader bool `json:"leader"`
		}
		if _, err := c.call(ctx, http.MethodGet, "/queue", nil, nil, &q); err != nil {
			t.Fatal(err)
		}
		if q.Leader {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the quickstart does not lead after 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.kill()
	srv.mustStart()

	var a struct {
		accepted
		Done  bool   `json:"done"`
		Error string `json:"error"`
	}
	start := time.Now()
	code, err := c.call(ctx, http.MethodPost, "/run-task/demo/development/echo", map[string]any{"message": "after restart"},
		map[string]string{"Prefer": "wait=2"}, &a)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || a.Phase != "succeeded" {
		t.Errorf("after a restart, an echo run is %s (status %d) %s after submission; want succeeded within Prefer: wait=2 "+
			"(the restarted process waits for its predecessor's scheduler lease to expire)",
			a.Phase, code, time.Since(start).Round(time.Millisecond))
	}
}
