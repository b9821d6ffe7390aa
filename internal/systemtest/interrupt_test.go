package systemtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// interruptedRun is the part of GET /run/{name} that says which attempts
// an interruption ended.
type interruptedRun struct {
	Phase    string `json:"phase"`
	Error    string `json:"error"`
	Attempts []struct {
		Phase       string `json:"phase"`
		Error       string `json:"error"`
		Interrupted bool   `json:"interrupted"`
	} `json:"attempts"`
}

func (r interruptedRun) interruptions() int {
	n := 0
	for _, a := range r.Attempts {
		if a.Interrupted {
			n++
		}
	}
	return n
}

// TestRestartsDoNotSpendRetries SIGKILLs the single-process quickstart
// five times in quick succession, each time while runs are running, and
// restarts it on the same data dir. The runs are 0.2 s sleeps with the
// default policies (three attempts, ten interruptions): every acknowledged
// run must succeed. Restarts are interruptions of the platform, not
// failures of the task; when they counted as failures, three quick
// restarts failed every run that ran through them ("no attempts left").
func TestRestartsDoNotSpendRetries(t *testing.T) {
	if testing.Short() {
		t.Skip("restart test: builds the quickstart and SIGKILLs it 5 times; skipped in -short")
	}
	const (
		upfront = 40
		kills   = 5
	)
	bin := quickstart(t)
	srv := newProc(t, "quickstart", bin, freeAddr(t), map[string]string{
		"TASKGATE_DATA_DIR":    t.TempDir(),
		"TASKGATE_AUTH_TOKENS": crashToken + "=crasher:admins",
		"TASKGATE_NODE_ID":     "restart-node",
	})
	srv.mustStart()
	c := newClient(srv.base(), crashToken)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var (
		mu      sync.Mutex
		names   []string
		failed  []error
		retries atomic.Int64
		seq     atomic.Int64
	)
	submitOne := func() {
		i := int(seq.Add(1))
		j := crashJob{i: i, task: "sleep", key: fmt.Sprintf("restart-%d", i), input: map[string]any{"seconds": 0.2}}
		name, err := submitUntilAccepted(ctx, c, j, &retries)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed = append(failed, fmt.Errorf("run %d: %w", i, err))
			return
		}
		names = append(names, name)
	}
	for range upfront {
		submitOne()
	}
	// More runs arrive while the process is killed and restarted: each is
	// retried with its key until acknowledged.
	stopFeed := make(chan struct{})
	var feed sync.WaitGroup
	feed.Go(func() {
		for {
			select {
			case <-stopFeed:
				return
			case <-time.After(25 * time.Millisecond):
			}
			submitOne()
		}
	})

	for k := 1; k <= kills; k++ {
		deadline := time.Now().Add(20 * time.Second)
		for {
			var page struct {
				Runs []runStatus `json:"runs"`
			}
			_, err := c.call(ctx, http.MethodGet, "/runs?all=true&phase=running&limit=1", nil, nil, &page)
			if err == nil && len(page.Runs) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: no run running after 20s (last error: %v)", k, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		srv.kill()
		t.Logf("kill %d", k)
		srv.mustStart()
	}
	close(stopFeed)
	feed.Wait()
	for _, err := range failed {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	final, err := waitAll(ctx, c, names, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	total, most, succeeded := 0, 0, 0
	for _, name := range names {
		if st := final[name]; st.Phase != "succeeded" {
			t.Errorf("acknowledged run %s ended %s: %s (attempts %+v)", name, st.Phase, st.Error, st.Attempts)
			continue
		}
		succeeded++
		var r interruptedRun
		if _, err := c.call(ctx, http.MethodGet, "/run/"+name, nil, nil, &r); err != nil {
			t.Fatal(err)
		}
		total += r.interruptions()
		most = max(most, r.interruptions())
	}
	t.Logf("%d runs acknowledged (%d retried requests), %d succeeded; %d interrupted attempts, at most %d of one run",
		len(names), retries.Load(), succeeded, total, most)
	// Each kill found a run running: the test did interrupt runs.
	if total < kills {
		t.Errorf("%d interrupted attempts after %d kills of a running node; want at least one per kill", total, kills)
	}
}

// TestSigtermDrains stops the quickstart with SIGTERM while a short and a
// long sleep run: while it drains, /ready says draining, submits get 503
// with Retry-After and reads are served; the short run finishes within
// TASKGATE_DRAIN_TIMEOUT and succeeds; the long one is requeued as an
// interruption (not a failure) and succeeds after the restart.
func TestSigtermDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("drain test: builds the quickstart and stops it; skipped in -short")
	}
	bin := quickstart(t)
	srv := newProc(t, "quickstart", bin, freeAddr(t), map[string]string{
		"TASKGATE_DATA_DIR":      t.TempDir(),
		"TASKGATE_AUTH_TOKENS":   crashToken + "=crasher:admins",
		"TASKGATE_NODE_ID":       "drain-node",
		"TASKGATE_DRAIN_TIMEOUT": "2s",
	})
	srv.mustStart()
	c := newClient(srv.base(), crashToken)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// raw sends a request and returns the status, headers and body.
	raw := func(method, path string, body any) (int, http.Header, string) {
		t.Helper()
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, srv.base()+path, r)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+crashToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if code, _, body := raw(http.MethodGet, "/ready", nil); code != http.StatusOK {
		t.Fatalf("/ready of a started server: %d %s", code, body)
	}
	submit := func(seconds float64) string {
		var a accepted
		if _, err := c.call(ctx, http.MethodPost, "/run-task/demo/development/sleep", map[string]any{"seconds": seconds}, nil, &a); err != nil {
			t.Fatal(err)
		}
		return a.Name
	}
	get := func(name string) interruptedRun {
		var r interruptedRun
		if _, err := c.call(ctx, http.MethodGet, "/run/"+name, nil, nil, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	short, long := submit(0.5), submit(4)
	for get(short).Phase != "running" || get(long).Phase != "running" {
		if ctx.Err() != nil {
			t.Fatal("the runs never ran")
		}
		time.Sleep(5 * time.Millisecond)
	}

	exited := srv.signal(syscall.SIGTERM)
	// /ready says draining, and a submit is refused with Retry-After.
	for {
		code, _, body := raw(http.MethodGet, "/ready", nil)
		if code == http.StatusServiceUnavailable {
			if !bytes.Contains([]byte(body), []byte(`"detail":"draining"`)) {
				t.Errorf("/ready while draining: %s", body)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("/ready never said draining")
		}
		time.Sleep(5 * time.Millisecond)
	}
	code, hdr, body := raw(http.MethodPost, "/run-task/demo/development/echo", map[string]any{"message": "during drain"})
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || hdr.Get("Content-Type") != "application/problem+json" {
		t.Errorf("a submit while draining got %d (Retry-After %q, %s): %s; want 503 problem+json with Retry-After",
			code, hdr.Get("Retry-After"), hdr.Get("Content-Type"), body)
	}
	// Reads are served while the runs drain: the short run ends.
	for {
		st := get(short)
		if st.Phase == "succeeded" {
			break
		}
		if st.Phase != "running" || ctx.Err() != nil {
			t.Fatalf("the short run is %s (%s) while draining; want it to finish", st.Phase, st.Error)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the quickstart did not exit after SIGTERM")
	}

	srv.mustStart()
	final, err := waitAll(ctx, c, []string{short, long}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if st := final[long]; st.Phase != "succeeded" {
		t.Fatalf("the long run ended %s: %s", st.Phase, st.Error)
	}
	r := get(long)
	if len(r.Attempts) != 2 || !r.Attempts[0].Interrupted || r.Attempts[1].Interrupted || r.Attempts[1].Phase != "succeeded" {
		t.Errorf("the long run's attempts: %+v; want an interrupted one, then a success", r.Attempts)
	}
	if s := get(short); len(s.Attempts) != 1 {
		t.Errorf("the short run's attempts: %+v; want one", s.Attempts)
	}
}

// signal sends sig to the process and returns a channel closed when it
// exits.
func (p *proc) signal(sig syscall.Signal) <-chan struct{} {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	return exited
}
