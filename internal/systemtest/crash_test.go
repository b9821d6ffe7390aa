package systemtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const crashToken = "crash-test-token-0123456789"

// crashJob is one run the crash test submits, with the key that makes its
// retries safe.
type crashJob struct {
	i     int
	task  string // "echo" or "sleep"
	key   string
	input map[string]any
}

// TestCrashSafety submits 1,000 runs over HTTP to the single-process
// quickstart (SQLite) while SIGKILLing it 5 times at random moments and
// restarting it on the same data dir and port. Every run that got a 2xx must
// end succeeded with its outputs, exactly once: no run lost, no duplicate
// created by a retried request, no two successful attempts.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: builds the quickstart and SIGKILLs it 5 times; skipped in -short")
	}
	const (
		total   = 1000
		kills   = 5
		workers = 8
		// window paces the submissions so that the kills land among them.
		window = 6 * time.Second
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))

	bin := quickstart(t)
	srv := newProc(t, "quickstart", bin, freeAddr(t), map[string]string{
		"TASKGATE_DATA_DIR":    t.TempDir(),
		"TASKGATE_AUTH_TOKENS": crashToken + "=crasher:admins",
		// A fixed node ID: the restarted agent must recognize its runs.
		"TASKGATE_NODE_ID": "crash-node",
	})
	srv.mustStart()
	c := newClient(srv.base(), crashToken)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	jobs := make([]crashJob, total)
	for i := range jobs {
		j := crashJob{i: i, key: fmt.Sprintf("crash-%d-%d", seed, i)}
		if i%2 == 0 {
			j.task, j.input = "echo", map[string]any{"message": fmt.Sprintf("message %d", i)}
		} else {
			j.task, j.input = "sleep", map[string]any{"seconds": 0.02 + 0.01*float64(i%5)}
		}
		jobs[i] = j
	}

	// The killer: 5 SIGKILLs at random moments of the submission window,
	// each followed by a restart on the same data dir and port.
	killAt := make([]time.Duration, kills)
	for i := range killAt {
		killAt[i] = time.Duration(rng.Int64N(int64(window - 200*time.Millisecond)))
	}
	slices.Sort(killAt)
	began := time.Now()
	killerErr := make(chan error, 1)
	go func() {
		for i, at := range killAt {
			time.Sleep(time.Until(began.Add(at)))
			srv.kill()
			t.Logf("kill %d at %s", i+1, time.Since(began).Round(time.Millisecond))
			// Stay down a little, sometimes: clients see refused connections.
			time.Sleep(time.Duration(rng.Int64N(int64(50 * time.Millisecond))))
			if err := srv.start(ctx); err != nil {
				killerErr <- err
				cancel() // the submitters would retry against nothing
				return
			}
		}
		killerErr <- nil
	}()

	// Submitters: a paced feed of jobs; each is retried with its key until
	// a 2xx or an answer that retrying cannot change.
	var (
		mu      sync.Mutex
		names   = make([]string, total)
		failed  []error
		retries atomic.Int64
	)
	feed := make(chan crashJob)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range feed {
				name, err := submitUntilAccepted(ctx, c, j, &retries)
				mu.Lock()
				if err != nil {
					failed = append(failed, fmt.Errorf("job %d: %w", j.i, err))
				} else {
					names[j.i] = name
				}
				mu.Unlock()
			}
		})
	}
	for i, j := range jobs {
		time.Sleep(time.Until(began.Add(window * time.Duration(i) / total)))
		feed <- j
	}
	close(feed)
	wg.Wait()
	submitted := time.Now()
	if err := <-killerErr; err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Logf("%d runs accepted in %s with %d retried requests across %d kills",
		total, time.Since(began).Round(time.Millisecond), retries.Load(), kills)
	for _, err := range failed {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Retrying every key now returns the same run: idempotency held across
	// the crashes.
	phase := time.Now()
	for _, j := range jobs {
		var a accepted
		if _, err := c.call(ctx, http.MethodPost, "/run-task/demo/development/"+j.task, j.input,
			map[string]string{"Idempotency-Key": j.key}, &a); err != nil {
			t.Fatalf("job %d: resubmit: %v", j.i, err)
		}
		if a.Name != names[j.i] {
			t.Errorf("job %d: key %s first gave run %s, now %s", j.i, j.key, names[j.i], a.Name)
		}
	}

	// Exactly the accepted runs exist: no retried request created a second
	// run, no accepted run is missing.
	t.Logf("resubmitted %d keys in %s", total, time.Since(phase).Round(time.Millisecond))
	stored := listAllRuns(ctx, t, c)
	if len(stored) != total {
		t.Errorf("the store holds %d runs, want %d", len(stored), total)
	}
	for i, name := range names {
		if !stored[name] {
			t.Errorf("job %d: accepted run %s is not in GET /runs", i, name)
		}
	}

	// Every accepted run ends succeeded, with one successful attempt and
	// its outputs.
	phase = time.Now()
	final, err := waitAll(ctx, c, names, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("all terminal %s after the listing", time.Since(phase).Round(time.Millisecond))
	interrupted := 0
	var lastDone time.Time
	var slowest time.Duration
	for _, j := range jobs {
		if st := final[names[j.i]]; st.FinishedAt != nil {
			if st.FinishedAt.After(lastDone) {
				lastDone = *st.FinishedAt
			}
			slowest = max(slowest, st.FinishedAt.Sub(st.CreatedAt))
		}
		name := names[j.i]
		st := final[name]
		if st.Phase != "succeeded" {
			t.Errorf("job %d (%s): run %s ended %s: %s (attempts %+v)", j.i, j.task, name, st.Phase, st.Error, st.Attempts)
			continue
		}
		if n := succeededAttempts(st); n != 1 {
			t.Errorf("job %d: run %s has %d succeeded attempts, want 1: %+v", j.i, name, n, st.Attempts)
		}
		if len(st.Attempts) > 1 {
			interrupted++
		}
		var rio runIO
		if _, err := c.call(ctx, http.MethodGet, "/run/"+name+"/io", nil, nil, &rio); err != nil {
			t.Errorf("job %d: %v", j.i, err)
			continue
		}
		checkCrashOutputs(t, j, rio)
	}
	t.Logf("%d runs succeeded; %d of them needed more than one attempt; the last finished %s after the submissions ended; the slowest took %s from submission to end",
		total, interrupted, lastDone.Sub(submitted).Round(time.Millisecond), slowest.Round(time.Millisecond))
}

// submitUntilAccepted POSTs the job until it gets a 2xx, retrying with the
// same Idempotency-Key while the server is down or restarting.
func submitUntilAccepted(ctx context.Context, c *client, j crashJob, retries *atomic.Int64) (string, error) {
	hdr := map[string]string{"Idempotency-Key": j.key}
	for {
		var a accepted
		code, err := c.call(ctx, http.MethodPost, "/run-task/demo/development/"+j.task, j.input, hdr, &a)
		switch {
		case err == nil && a.Name == "":
			return "", fmt.Errorf("status %d without a run name", code)
		case err == nil:
			return a.Name, nil
		case !retryable(code, err):
			return "", err
		case ctx.Err() != nil:
			return "", fmt.Errorf("gave up: %w (last error: %w)", ctx.Err(), err)
		}
		retries.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
}

// listAllRuns pages through GET /runs?all=true and returns the names.
func listAllRuns(ctx context.Context, t *testing.T, c *client) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	cursor := ""
	for {
		var page struct {
			Runs       []runStatus `json:"runs"`
			NextCursor string      `json:"next_cursor"`
		}
		path := "/runs?all=true&limit=200"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if _, err := c.call(ctx, http.MethodGet, path, nil, nil, &page); err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Runs {
			if names[r.Name] {
				t.Errorf("GET /runs lists %s twice", r.Name)
			}
			names[r.Name] = true
		}
		if page.NextCursor == "" {
			return names
		}
		cursor = page.NextCursor
	}
}

// checkCrashOutputs checks that a run's outputs are those of its inputs.
func checkCrashOutputs(t *testing.T, j crashJob, rio runIO) {
	t.Helper()
	switch j.task {
	case "echo":
		var out struct {
			Message *string `json:"message"`
		}
		err := json.Unmarshal(rio.Outputs, &out)
		if err != nil || out.Message == nil || *out.Message != j.input["message"] {
			t.Errorf("job %d: echo outputs %s, want message %q (%v)", j.i, rio.Outputs, j.input["message"], err)
		}
	case "sleep":
		var out struct {
			Slept *float64 `json:"slept"`
		}
		err := json.Unmarshal(rio.Outputs, &out)
		if err != nil || out.Slept == nil || *out.Slept < j.input["seconds"].(float64)*0.9 {
			t.Errorf("job %d: sleep outputs %s, want slept ≥ %v (%v)", j.i, rio.Outputs, j.input["seconds"], err)
		}
	default:
		t.Fatal(errors.New("unknown task " + j.task))
	}
}
