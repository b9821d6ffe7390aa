package environments_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/environments/queue"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/internal/stdwebhook"
	"github.com/taskgate/taskgate/internal/tmpfs"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/callback"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

type diskInput struct {
	// Hold waits for the test to open the gate.
	Hold bool `json:"hold,omitempty"`
	// RetryMS asks for another attempt that long after the first.
	RetryMS int    `json:"retry_ms,omitempty"`
	Pad     string `json:"pad,omitempty"`
}

type diskOutput struct {
	Attempt int `json:"attempt"`
}

// TestFullDiskAnswers507AndBacksOff fills the 4 MiB filesystem under an
// App's SQLite database while runs wait in every state a loop writes: held
// runs whose outcome is due (the agent's outcome writer), retried runs that
// come due (the scheduler's bindings), callbacks (the outbox). For 10 s of
// full disk, submits must answer 507 (or 503) with Retry-After, the logs
// stay under 50 lines and the store under 300 calls (a loop that retries at
// once makes thousands); once space returns, every acknowledged run
// succeeds and its callback arrives.
func TestFullDiskAnswers507AndBacksOff(t *testing.T) {
	dir := tmpfs.Mount(t, 4<<20)
	sq, err := sqlite.Open(context.Background(), filepath.Join(dir, sqlite.FileName))
	require.NoError(t, err)
	st := &countingStore{Store: sq}
	lines := &lineCounter{}
	logger := slog.New(lines)

	gate := make(chan struct{})
	work := tasks.MustDefine("disk", "full", "work", func(ctx context.Context, in diskInput) (diskOutput, error) {
		ri, _ := tasks.RunInfoFromContext(ctx)
		if in.Hold {
			select {
			case <-gate:
			case <-ctx.Done():
				return diskOutput{}, ctx.Err()
			}
		}
		if in.RetryMS > 0 && ri.Attempt == 1 {
			return diskOutput{}, tasks.RetryAfter(time.Duration(in.RetryMS) * time.Millisecond)
		}
		return diskOutput{Attempt: ri.Attempt}, nil
	}, &tasks.Options{Resources: tasks.Resources{CPU: "100m"}})
	reg := tasks.NewRegistry()
	reg.MustRegister(work)
	d, err := dispatch.New(dispatch.Config{
		Store: st, Registry: reg, Logger: logger,
		Node: dispatch.NodeConfig{ID: "disk-node", MilliCPU: 8000, MemoryBytes: 1 << 30},
		// The lease outlives the full disk, so the scheduler keeps leading
		// (and scheduling) through it; so does the node, whose heartbeats
		// cannot be written meanwhile.
		LeaseTTL: 30 * time.Second, HeartbeatTimeout: time.Minute,
	})
	require.NoError(t, err)

	hooks := newHookReceiver(t)
	del, err := callback.New(callback.Config{Secrets: []stdwebhook.Secret{stdwebhook.NewSecret()}, AllowPrivate: true})
	require.NoError(t, err)
	worker, err := callback.NewWorker(del, st, callback.WorkerConfig{Logger: logger, PollInterval: 200 * time.Millisecond})
	require.NoError(t, err)
	var stopWorker context.CancelFunc
	workerDone := make(chan struct{})

	const token = "disk-token-0123456789"
	auth, err := middleware.ParseStaticTokens(token + "=alice")
	require.NoError(t, err)
	env := webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "disk"}, Groups: []string{webhook.GroupAll},
	})
	app := &framework.App{
		Logger: logger, Environments: []environments.Environment{env}, Registry: reg,
		Dispatcher: d, Authenticator: auth,
		OnStart: []func(context.Context) error{
			d.Start,
			func(ctx context.Context) error {
				var wctx context.Context
				wctx, stopWorker = context.WithCancel(context.WithoutCancel(ctx))
				unsub := d.OnDelivery(worker.Notify)
				go func() {
					defer close(workerDone)
					defer unsub()
					_ = worker.Run(wctx)
				}()
				return nil
			},
		},
		OnStop: []func(context.Context) error{
			func(ctx context.Context) error { return errors.Join(d.Close(ctx), st.Close()) },
			func(context.Context) error { stopWorker(); <-workerDone; return nil },
		},
	}
	base := frameworktest.Serve(t, app)

	c := &diskClient{t: t, base: base, token: token}
	var acked []string // every run answered 202
	submit := func(in diskInput, webhook bool) envtest.Reply {
		r := c.submit(in, webhook, hooks.url)
		if r.Status == http.StatusAccepted {
			acked = append(acked, r.Body["name"].(string))
		}
		return r
	}
	// Two held runs, running until the gate opens; their outcomes are
	// written on a full disk.
	var held []string
	for range 2 {
		r := submit(diskInput{Hold: true}, true)
		require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
		held = append(held, r.Body["name"].(string))
	}
	for _, name := range held {
		c.waitPhase(name, func(s map[string]any) bool { return s["phase"] == string(tasks.PhaseRunning) })
	}
	// Three runs that fail their first attempt with RetryAfter(3s): they
	// come due, and are bound, on a full disk.
	var retried []string
	for range 3 {
		r := submit(diskInput{RetryMS: 3000}, false)
		require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
		retried = append(retried, r.Body["name"].(string))
	}
	for _, name := range retried {
		c.waitPhase(name, func(s map[string]any) bool {
			return s["phase"] == string(tasks.PhaseQueued) && len(s["attempts"].([]any)) == 1
		})
	}

	// Fill the disk: a file takes all but 160 KiB, submits take the rest.
	filler := tmpfs.Fill(t, dir, 160<<10)
	pad := strings.Repeat("x", 16<<10)
	var full envtest.Reply
	for range 200 {
		if full = submit(diskInput{Pad: pad}, false); full.Status != http.StatusAccepted {
			break
		}
	}
	require.NotEqual(t, http.StatusAccepted, full.Status, "200 submits did not fill the disk")
	assertStoreFull(t, full)

	// The held runs return now: outcomes, bindings and callbacks all meet
	// the full disk.
	close(gate)
	lines0, calls0 := lines.n.Load(), st.total()
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		time.Sleep(time.Second)
		if r := submit(diskInput{Pad: pad}, false); r.Status != http.StatusAccepted {
			assertStoreFull(t, r)
		}
	}
	logged, calls := lines.n.Load()-lines0, st.total()-calls0
	t.Logf("10 s of full disk: %d log lines, %d store calls (whole test: lines %v, calls %v)", logged, calls, lines.top(10), st.counts())
	assert.Less(t, logged, int64(50), "log lines in 10 s of full disk; the most frequent: %v", lines.top(5))
	assert.Less(t, calls, int64(300), "store calls in 10 s of full disk: %v", st.counts())

	// Space returns: every acknowledged run succeeds, the held ones'
	// callbacks arrive, and new submits are accepted.
	require.NoError(t, os.Remove(filler))
	r := submit(diskInput{}, false)
	require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
	for _, name := range acked {
		s := c.waitPhase(name, func(s map[string]any) bool { return s["done"] == true })
		assert.Equal(t, string(tasks.PhaseSucceeded), s["phase"], "run %s: %v", name, s["error"])
	}
	require.Eventually(t, func() bool { return hooks.completed(held...) }, 30*time.Second, 50*time.Millisecond,
		"completed callbacks of the held runs")
	assert.True(t, lines.saw("recovered"), "no line says the store recovered: %v", lines.top(10))
}

// assertStoreFull checks the answer to a submit the full disk refused.
func assertStoreFull(t *testing.T, r envtest.Reply) {
	t.Helper()
	assert.Contains(t, []int{http.StatusInsufficientStorage, http.StatusServiceUnavailable}, r.Status, r.Raw)
	assert.NotEmpty(t, r.Header.Get("Retry-After"), "Retry-After of a %d", r.Status)
	assert.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
}

type diskClient struct {
	t     *testing.T
	base  string
	token string
}

func (c *diskClient) submit(in diskInput, webhook bool, hookURL string) envtest.Reply {
	c.t.Helper()
	body, err := json.Marshal(in)
	require.NoError(c.t, err)
	u := c.base + "/run-task/disk/full/work"
	if webhook {
		u += "?webhook=" + hookURL
	}
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(string(body)))
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	return envtest.RoundTrip(c.t, req)
}

// waitPhase polls GET /run/{name} until ok holds for its body (45 s).
func (c *diskClient) waitPhase(name string, ok func(map[string]any) bool) map[string]any {
	c.t.Helper()
	var last envtest.Reply
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		req, err := http.NewRequest(http.MethodGet, c.base+"/run/"+name, nil)
		require.NoError(c.t, err)
		req.Header.Set("Authorization", "Bearer "+c.token)
		last = envtest.RoundTrip(c.t, req)
		if last.Status == http.StatusOK && ok(last.Body) {
			return last.Body
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("run %s: still %d %s", name, last.Status, last.Raw)
	return nil
}

// hookReceiver records the callbacks it gets, on loopback.
type hookReceiver struct {
	url  string
	mu   sync.Mutex
	done map[string]bool // runs whose run.completed arrived
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{done: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Type string `json:"type"`
			Data struct {
				Name string `json:"name"`
			} `json:"data"`
		}
		b, _ := io.ReadAll(r.Body)
		if json.Unmarshal(b, &p) == nil && p.Type == callback.TypeRunCompleted {
			h.mu.Lock()
			h.done[p.Data.Name] = true
			h.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/hook"
	return h
}

func (h *hookReceiver) completed(runs ...string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range runs {
		if !h.done[r] {
			return false
		}
	}
	return true
}

// lineCounter is a slog.Handler that counts the records a production
// logger prints (Info and above) and what they say.
type lineCounter struct {
	n     atomic.Int64
	mu    sync.Mutex
	byMsg map[string]int
}

func (h *lineCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *lineCounter) Handle(_ context.Context, r slog.Record) error {
	h.n.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byMsg == nil {
		h.byMsg = map[string]int{}
	}
	h.byMsg[r.Message]++
	return nil
}

func (h *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *lineCounter) WithGroup(string) slog.Handler      { return h }

func (h *lineCounter) saw(part string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for m := range h.byMsg {
		if strings.Contains(m, part) {
			return true
		}
	}
	return false
}

// top is the n most frequent messages with their counts.
func (h *lineCounter) top(n int) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	msgs := slices.SortedFunc(maps.Keys(h.byMsg), func(a, b string) int { return h.byMsg[b] - h.byMsg[a] })
	var out []string
	for _, m := range msgs[:min(n, len(msgs))] {
		out = append(out, fmt.Sprintf("%dx %q", h.byMsg[m], m))
	}
	return out
}

// countingStore counts the calls the dispatcher and the webhook worker make
// to the store, by method.
type countingStore struct {
	store.Store
	mu sync.Mutex
	n  map[string]int64
}

func (s *countingStore) count(method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int64{}
	}
	s.n[method]++
}

func (s *countingStore) total() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t int64
	for _, v := range s.n {
		t += v
	}
	return t
}

func (s *countingStore) counts() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.n)
}

func (s *countingStore) CreateRuns(ctx context.Context, runs []store.NewRun) ([]store.CreateResult, error) {
	s.count("CreateRuns")
	return s.Store.CreateRuns(ctx, runs)
}

func (s *countingStore) Transition(ctx context.Context, ts []store.Transition) ([]store.TransitionResult, error) {
	s.count("Transition")
	return s.Store.Transition(ctx, ts)
}

func (s *countingStore) RequestAbort(ctx context.Context, name, reason string, at time.Time) (store.AbortResult, error) {
	s.count("RequestAbort")
	return s.Store.RequestAbort(ctx, name, reason, at)
}

func (s *countingStore) GetRun(ctx context.Context, name string) (*store.StoredRun, error) {
	s.count("GetRun")
	return s.Store.GetRun(ctx, name)
}

func (s *countingStore) ListRuns(ctx context.Context, f store.RunFilter) ([]*store.StoredRun, error) {
	s.count("ListRuns")
	return s.Store.ListRuns(ctx, f)
}

func (s *countingStore) ActiveRuns(ctx context.Context, node string) ([]*store.StoredRun, error) {
	s.count("ActiveRuns")
	return s.Store.ActiveRuns(ctx, node)
}

func (s *countingStore) QueuedRunsAfter(ctx context.Context, afterSeq int64, limit int) ([]*store.StoredRun, error) {
	s.count("QueuedRunsAfter")
	return s.Store.QueuedRunsAfter(ctx, afterSeq, limit)
}

func (s *countingStore) Events(ctx context.Context, name string, afterSeq int64) ([]tasks.Event, error) {
	s.count("Events")
	return s.Store.Events(ctx, name, afterSeq)
}

func (s *countingStore) AppendLogs(ctx context.Context, lines []store.LogLine) error {
	s.count("AppendLogs")
	return s.Store.AppendLogs(ctx, lines)
}

func (s *countingStore) Logs(ctx context.Context, run string) ([]store.LogLine, error) {
	s.count("Logs")
	return s.Store.Logs(ctx, run)
}

func (s *countingStore) UpsertNode(ctx context.Context, n store.Node) error {
	s.count("UpsertNode")
	return s.Store.UpsertNode(ctx, n)
}

func (s *countingStore) Heartbeat(ctx context.Context, id string, at time.Time) error {
	s.count("Heartbeat")
	return s.Store.Heartbeat(ctx, id, at)
}

func (s *countingStore) Nodes(ctx context.Context) ([]store.Node, error) {
	s.count("Nodes")
	return s.Store.Nodes(ctx)
}

func (s *countingStore) DeleteNode(ctx context.Context, id string) error {
	s.count("DeleteNode")
	return s.Store.DeleteNode(ctx, id)
}

func (s *countingStore) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	s.count("AcquireLease")
	return s.Store.AcquireLease(ctx, name, holder, ttl)
}

func (s *countingStore) ReleaseLease(ctx context.Context, name, holder string) error {
	s.count("ReleaseLease")
	return s.Store.ReleaseLease(ctx, name, holder)
}

func (s *countingStore) EnqueueDelivery(ctx context.Context, dl store.NewDelivery) (store.Delivery, error) {
	s.count("EnqueueDelivery")
	return s.Store.EnqueueDelivery(ctx, dl)
}

func (s *countingStore) ClaimDueDeliveries(ctx context.Context, now time.Time, limit int) ([]store.Delivery, error) {
	s.count("ClaimDueDeliveries")
	return s.Store.ClaimDueDeliveries(ctx, now, limit)
}

func (s *countingStore) RecordDeliveryAttempt(ctx context.Context, id string, a store.DeliveryAttempt) error {
	s.count("RecordDeliveryAttempt")
	return s.Store.RecordDeliveryAttempt(ctx, id, a)
}

func (s *countingStore) ListDeliveries(ctx context.Context, run string) ([]store.Delivery, error) {
	s.count("ListDeliveries")
	return s.Store.ListDeliveries(ctx, run)
}

func (s *countingStore) PurgeRuns(ctx context.Context, finishedBefore time.Time) (int, error) {
	s.count("PurgeRuns")
	return s.Store.PurgeRuns(ctx, finishedBefore)
}

func (s *countingStore) DeleteRuns(ctx context.Context, finishedBefore time.Time, limit int) (int, error) {
	s.count("DeleteRuns")
	return s.Store.DeleteRuns(ctx, finishedBefore, limit)
}

// refusingSubmits is a store that refuses new runs with err.
type refusingSubmits struct {
	store.Store
	err error
}

func (s *refusingSubmits) CreateRuns(context.Context, []store.NewRun) ([]store.CreateResult, error) {
	return nil, s.err
}

// TestStoreFailuresAnswer503Or507: a submit the store refuses because it
// is unavailable answers 503, or 507 for a full disk, with Retry-After, on
// the webhook environment and on the queue alike; neither is a 500.
func TestStoreFailuresAnswer503Or507(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		retryAfter string
	}{
		{"unavailable", fmt.Errorf("begin: %w: connection refused", store.ErrUnavailable), http.StatusServiceUnavailable, "5"},
		{"disk full", fmt.Errorf("commit: %w: database or disk is full (13)", store.ErrDiskFull), http.StatusInsufficientStorage, "30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sq, err := sqlite.OpenDir(context.Background(), t.TempDir())
			require.NoError(t, err)
			st := &refusingSubmits{Store: sq, err: tc.err}
			reg := tasks.NewRegistry()
			reg.MustRegister(demo.Echo)
			logger := slog.New(slog.DiscardHandler)
			d, err := dispatch.New(dispatch.Config{Store: st, Registry: reg, Logger: logger, Node: dispatch.NodeConfig{ID: "n1"}})
			require.NoError(t, err)
			const token = "store-token-0123456789"
			auth, err := middleware.ParseStaticTokens(token + "=alice")
			require.NoError(t, err)
			app := &framework.App{
				Logger: logger, Registry: reg, Dispatcher: d, Authenticator: auth,
				Environments: []environments.Environment{
					webhook.MustNew(webhook.Config{Settings: environments.Settings{Name: "hooks"}}),
					// The store refuses the submit: the app's handler is never reached.
					environments.MustAppEnvironment(environments.AppConfig{
						Settings: environments.Settings{Name: "gen", PathPrefix: "/gen"},
						Handler:  http.NotFoundHandler(),
						Queue:    queue.MustNew(queue.Config{}),
					}),
				},
				OnStart: []func(context.Context) error{d.Start},
				OnStop:  []func(context.Context) error{func(ctx context.Context) error { return errors.Join(d.Close(ctx), sq.Close()) }},
			}
			base := frameworktest.Serve(t, app)
			for _, path := range []string{"/run-task/demo/development/echo", "/gen/queue/submit/echo/x"} {
				req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(`{"message":"hi"}`))
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				r := envtest.RoundTrip(t, req)
				require.Equal(t, tc.status, r.Status, "%s: %s", path, r.Raw)
				require.Equal(t, tc.retryAfter, r.Header.Get("Retry-After"), path)
				require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"), path)
			}
		})
	}
}
