package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/discovery"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

var alice = identity.Identity{Subject: "alice", Name: "Alice", Email: "alice@example.com", Groups: []string{"ml"}}

type echoIn struct {
	Message string `json:"message"`
}

type echoOut struct {
	Message string `json:"message"`
	Caller  string `json:"caller"`
	Attempt int    `json:"attempt"`
	Devices string `json:"devices"`
}

type sleepIn struct {
	Seconds float64 `json:"seconds"`
	// Ignore makes the function deaf to cancellation.
	Ignore bool `json:"ignore"`
}

type flakyIn struct {
	Failures int    `json:"failures"`
	Mode     string `json:"mode"` // "", "permanent", "retry_after", "panic", "big"
}

// fixture holds the tasks of the tests.
type fixture struct {
	reg                *tasks.Registry
	echo, sleep, flaky *tasks.Definition
	slowTimeout, gpu   *tasks.Definition
	flakyOnce          *tasks.Definition
}

var fastRetry = &tasks.RetryPolicy{MaxAttempts: 3, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Multiplier: 2}

func newFixture(t testing.TB) *fixture {
	f := &fixture{reg: tasks.NewRegistry()}
	echo := tasks.MustDefine("demo", "development", "echo", func(ctx context.Context, in echoIn) (echoOut, error) {
		ri, _ := tasks.RunInfoFromContext(ctx)
		tasks.Logger(ctx).Info("echoing", "message", in.Message)
		return echoOut{Message: in.Message, Caller: ri.Caller.Email, Attempt: ri.Attempt, Devices: tasks.VisibleDevices(ri.Devices)}, nil
	}, nil)
	sleep := tasks.MustDefine("demo", "development", "sleep", func(ctx context.Context, in sleepIn) (struct{}, error) {
		d := time.Duration(in.Seconds * float64(time.Second))
		if in.Ignore {
			time.Sleep(d)
			return struct{}{}, nil
		}
		select {
		case <-time.After(d):
			return struct{}{}, nil
		case <-ctx.Done():
			return struct{}{}, ctx.Err()
		}
	}, &tasks.Options{Retry: &tasks.NoRetry})
	flakyFn := func(ctx context.Context, in flakyIn) (map[string]any, error) {
		ri, _ := tasks.RunInfoFromContext(ctx)
		if ri.Attempt <= in.Failures {
			switch in.Mode {
			case "permanent":
				return nil, tasks.Permanent(errors.New("bad input"))
			case "retry_after":
				return nil, tasks.RetryAfter(10 * time.Millisecond)
			case "panic":
				panic("kaboom")
			}
			return nil, fmt.Errorf("failure %d", ri.Attempt)
		}
		if in.Mode == "big" {
			return map[string]any{"blob": strings.Repeat("x", 4096)}, nil
		}
		return map[string]any{"attempt": ri.Attempt}, nil
	}
	flaky := tasks.MustDefine("demo", "development", "flaky", flakyFn, &tasks.Options{Retry: fastRetry})
	flakyOnce := tasks.MustDefine("demo", "development", "flaky-once", flakyFn, &tasks.Options{Retry: &tasks.NoRetry})
	slow := tasks.MustDefine("demo", "development", "slow", func(ctx context.Context, in sleepIn) (struct{}, error) {
		<-ctx.Done()
		return struct{}{}, ctx.Err()
	}, &tasks.Options{Timeout: 50 * time.Millisecond, Retry: &tasks.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, Multiplier: 1}})
	gpu := tasks.MustDefine("demo", "development", "train", func(ctx context.Context, in echoIn) (echoOut, error) {
		return echoOut{Devices: tasks.VisibleDevices(tasks.Devices(ctx))}, nil
	}, &tasks.Options{Resources: tasks.Resources{GPU: "A100:1"}, Retry: &tasks.NoRetry})
	f.reg.MustRegister(echo, sleep, flaky, flakyOnce, slow, gpu)
	f.echo, f.sleep, f.flaky, f.flakyOnce, f.slowTimeout, f.gpu = echo.Definition(), sleep.Definition(), flaky.Definition(), flakyOnce.Definition(), slow.Definition(), gpu.Definition()
	return f
}

var debugLog = sync.OnceValue(func() io.Writer {
	if p := os.Getenv("TASKGATE_TEST_DEBUG_LOG"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			return f
		}
	}
	return nil
})

func quietLogger() *slog.Logger {
	if w := debugLog(); w != nil {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openStore(t testing.TB, dir string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.OpenDir(context.Background(), dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// start returns a started dispatcher over st; mod adjusts the config.
func start(t testing.TB, st store.Store, f *fixture, mod func(*dispatch.Config)) *dispatch.Dispatcher {
	t.Helper()
	cfg := dispatch.Config{
		Store: st, Registry: f.reg, Logger: quietLogger(),
		Node:              dispatch.NodeConfig{ID: "node-1", MilliCPU: 64000, MemoryBytes: 64 << 30},
		HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 3 * time.Second,
		LeaseTTL: 600 * time.Millisecond, AbortGrace: 200 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	d, err := dispatch.New(cfg)
	require.NoError(t, err)
	require.NoError(t, d.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d
}

func submit(t testing.TB, d *dispatch.Dispatcher, def *tasks.Definition, inputs string) *tasks.Run {
	t.Helper()
	run, created, err := d.Submit(context.Background(), dispatch.SubmitRequest{Task: def, Inputs: json.RawMessage(inputs), Caller: alice})
	require.NoError(t, err)
	require.True(t, created)
	return run
}

func wait(t testing.TB, d *dispatch.Dispatcher, name string) *tasks.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run, err := d.Wait(ctx, name)
	if err != nil {
		b, _ := json.MarshalIndent(run, "", " ")
		q, _ := d.Queue(context.Background())
		qb, _ := json.Marshal(q)
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("wait %s: %v\n%s\nqueue %s\n%s", name, err, b, qb, buf)
	}
	return run
}

func waitPhase(t testing.TB, d *dispatch.Dispatcher, name string, p tasks.Phase) {
	t.Helper()
	require.Eventually(t, func() bool {
		r, err := d.Get(context.Background(), name)
		return err == nil && r.Phase == p
	}, 10*time.Second, 5*time.Millisecond, "run %s never reached %s", name, p)
}

func phasesOf(t testing.TB, d *dispatch.Dispatcher, name string) []tasks.Phase {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := d.Events(ctx, name, 0)
	require.NoError(t, err)
	var ps []tasks.Phase
	for ev := range ch {
		ps = append(ps, ev.Phase)
	}
	return ps
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := start(t, openStore(t, t.TempDir()), f, nil)
	run := submit(t, d, f.echo, `{"message":"hello"}`)
	require.Equal(t, tasks.PhaseQueued, run.Phase)
	require.Equal(t, "alice", run.Owner)
	require.Regexp(t, `^r[0-9a-v]{25}$`, run.Name)

	done := wait(t, d, run.Name)
	require.Equal(t, tasks.PhaseSucceeded, done.Phase)
	require.JSONEq(t, `{"message":"hello","caller":"alice@example.com","attempt":1,"devices":""}`, string(done.Outputs))
	require.Len(t, done.Attempts, 1)
	require.Equal(t, "node-1", done.Attempts[0].Node)
	require.Equal(t, tasks.PhaseSucceeded, done.Attempts[0].Phase)
	require.NotNil(t, done.StartedAt)
	require.NotNil(t, done.FinishedAt)
	require.Equal(t, []tasks.Phase{tasks.PhaseQueued, tasks.PhaseInitializing, tasks.PhaseRunning, tasks.PhaseSucceeded}, phasesOf(t, d, run.Name))
	resumed, err := d.Events(context.Background(), run.Name, 2) // as after Last-Event-ID: 2
	require.NoError(t, err)
	var seqs []int64
	for ev := range resumed {
		seqs = append(seqs, ev.Seq)
	}
	require.Equal(t, []int64{3, 4}, seqs)
	after, err := d.Events(context.Background(), run.Name, 4)
	require.NoError(t, err)
	_, open := <-after
	require.False(t, open, "resuming after the terminal event ends at once")

	logs, err := d.Logs(context.Background(), run.Name)
	require.NoError(t, err)
	require.Len(t, logs, 1)
	require.Equal(t, "echoing", logs[0].Message)
	require.JSONEq(t, `{"message":"hello"}`, string(logs[0].Attrs))

	_, err = d.Get(context.Background(), "rnope")
	require.ErrorIs(t, err, dispatch.ErrNotFound)
	_, err = d.Abort(context.Background(), run.Name, "late")
	require.ErrorIs(t, err, dispatch.ErrAlreadyDone)
}

func TestOutcomes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := start(t, openStore(t, t.TempDir()), f, func(c *dispatch.Config) { c.MaxOutputBytes = 1024 })
	tests := []struct {
		name     string
		def      *tasks.Definition
		inputs   string
		phase    tasks.Phase
		attempts []tasks.Phase
		err      string
	}{
		{"retries then succeeds", f.flaky, `{"failures":2}`, tasks.PhaseSucceeded,
			[]tasks.Phase{tasks.PhaseFailed, tasks.PhaseFailed, tasks.PhaseSucceeded}, ""},
		{"attempts exhausted", f.flaky, `{"failures":5}`, tasks.PhaseFailed,
			[]tasks.Phase{tasks.PhaseFailed, tasks.PhaseFailed, tasks.PhaseFailed}, "failure 3"},
		{"permanent stops retries", f.flaky, `{"failures":5,"mode":"permanent"}`, tasks.PhaseFailed,
			[]tasks.Phase{tasks.PhaseFailed}, "bad input"},
		{"retry after does not count", f.flakyOnce, `{"failures":2,"mode":"retry_after"}`, tasks.PhaseSucceeded,
			[]tasks.Phase{tasks.PhaseFailed, tasks.PhaseFailed, tasks.PhaseSucceeded}, ""},
		{"panic is a failure", f.flakyOnce, `{"failures":1,"mode":"panic"}`, tasks.PhaseFailed,
			[]tasks.Phase{tasks.PhaseFailed}, "task panicked: kaboom"},
		{"outputs over the cap", f.flakyOnce, `{"mode":"big"}`, tasks.PhaseFailed,
			[]tasks.Phase{tasks.PhaseFailed}, "over the limit of 1024 bytes"},
		{"unknown input field", f.flaky, `{"nope":1}`, tasks.PhaseFailed,
			[]tasks.Phase{tasks.PhaseFailed}, "decode inputs"},
		{"timeout then timeout", f.slowTimeout, `{}`, tasks.PhaseTimedOut,
			[]tasks.Phase{tasks.PhaseTimedOut, tasks.PhaseTimedOut}, "attempt 2 timed out after 50ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			run := submit(t, d, tc.def, tc.inputs)
			done := wait(t, d, run.Name)
			require.Equal(t, tc.phase, done.Phase, done.Error)
			require.Contains(t, done.Error, tc.err)
			var got []tasks.Phase
			for i, a := range done.Attempts {
				require.Equal(t, i+1, a.Number)
				require.NotNil(t, a.FinishedAt)
				got = append(got, a.Phase)
			}
			require.Equal(t, tc.attempts, got)
		})
	}
}

func TestBackoffDelaysRetry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := start(t, openStore(t, t.TempDir()), f, nil)
	run := submit(t, d, f.flaky, `{"failures":2}`)
	done := wait(t, d, run.Name)
	require.Equal(t, tasks.PhaseSucceeded, done.Phase)
	// InitialBackoff 5ms then 10ms: each retry starts no earlier.
	for i, min := range []time.Duration{5 * time.Millisecond, 10 * time.Millisecond} {
		gap := done.Attempts[i+1].StartedAt.Sub(*done.Attempts[i].FinishedAt)
		require.GreaterOrEqual(t, gap, min, "gap before attempt %d", i+2)
	}
	require.Equal(t, []tasks.Phase{
		tasks.PhaseQueued, tasks.PhaseInitializing, tasks.PhaseRunning,
		tasks.PhaseQueued, tasks.PhaseInitializing, tasks.PhaseRunning,
		tasks.PhaseQueued, tasks.PhaseInitializing, tasks.PhaseRunning, tasks.PhaseSucceeded,
	}, phasesOf(t, d, run.Name))
}

func TestAbort(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := start(t, openStore(t, t.TempDir()), f, func(c *dispatch.Config) { c.AbortGrace = 100 * time.Millisecond })
	ctx := context.Background()

	t.Run("waiting run aborts at once", func(t *testing.T) {
		run := submit(t, d, f.gpu, `{}`) // the node has no GPU
		waitPhase(t, d, run.Name, tasks.PhaseWaitingForResources)
		pos, reason := d.QueuePosition(run.Name)
		require.Equal(t, 1, pos)
		require.NotEmpty(t, reason)
		got, err := d.Abort(ctx, run.Name, "no GPUs today")
		require.NoError(t, err)
		require.Equal(t, tasks.PhaseAborted, got.Phase)
		require.Equal(t, "aborted: no GPUs today", got.Error)
		deadline := time.Now().Add(5 * time.Second)
		for {
			pos, _ := d.QueuePosition(run.Name)
			if pos == 0 {
				break
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("%s still queued\n%s", run.Name, buf)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	t.Run("running run is cancelled", func(t *testing.T) {
		run := submit(t, d, f.sleep, `{"seconds":30}`)
		waitPhase(t, d, run.Name, tasks.PhaseRunning)
		got, err := d.Abort(ctx, run.Name, "stop")
		require.NoError(t, err)
		require.Equal(t, tasks.PhaseRunning, got.Phase, "aborted when the function returns")
		done := wait(t, d, run.Name)
		require.Equal(t, tasks.PhaseAborted, done.Phase)
		require.Equal(t, "aborted: stop", done.Error)
		require.Equal(t, tasks.PhaseAborted, done.Attempts[0].Phase)
	})
	t.Run("deaf function is aborted after the grace", func(t *testing.T) {
		run := submit(t, d, f.sleep, `{"seconds":3,"ignore":true}`)
		waitPhase(t, d, run.Name, tasks.PhaseRunning)
		began := time.Now()
		_, err := d.Abort(ctx, run.Name, "")
		require.NoError(t, err)
		done := wait(t, d, run.Name)
		require.Equal(t, tasks.PhaseAborted, done.Phase)
		require.Less(t, time.Since(began), 2*time.Second)
	})
	_, err := d.Abort(ctx, "rmissing", "")
	require.ErrorIs(t, err, dispatch.ErrNotFound)
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := start(t, openStore(t, t.TempDir()), f, func(c *dispatch.Config) { c.Role = dispatch.RoleAPI })
	ctx := context.Background()
	req := dispatch.SubmitRequest{Task: f.echo, Inputs: json.RawMessage(`{"message":"a"}`), Caller: alice, IdempotencyKey: "k"}
	first, created, err := d.Submit(ctx, req)
	require.NoError(t, err)
	require.True(t, created)

	again, created, err := d.Submit(ctx, req)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.Name, again.Name)

	other := req
	other.Inputs = json.RawMessage(`{"message":"b"}`)
	_, _, err = d.Submit(ctx, other)
	require.ErrorIs(t, err, dispatch.ErrIdempotencyConflict)

	other = req
	other.Task = f.sleep
	other.Inputs = req.Inputs
	_, _, err = d.Submit(ctx, other)
	require.ErrorIs(t, err, dispatch.ErrIdempotencyConflict, "the task is part of the request")

	bob := req
	bob.Caller = identity.Identity{Subject: "bob"}
	r, created, err := d.Submit(ctx, bob)
	require.NoError(t, err)
	require.True(t, created, "keys are per caller")
	require.NotEqual(t, first.Name, r.Name)

	// Concurrent retries of one request make one run.
	var wg sync.WaitGroup
	var n atomic.Int32
	names := make(chan string, 16)
	for range 16 {
		wg.Go(func() {
			r, created, err := d.Submit(ctx, dispatch.SubmitRequest{Task: f.echo, Inputs: json.RawMessage(`{}`), Caller: alice, IdempotencyKey: "c"})
			require.NoError(t, err)
			if created {
				n.Add(1)
			}
			names <- r.Name
		})
	}
	wg.Wait()
	close(names)
	require.Equal(t, int32(1), n.Load())
	seen := map[string]bool{}
	for name := range names {
		seen[name] = true
	}
	require.Len(t, seen, 1)
}

func TestListAndSubscribe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := start(t, openStore(t, t.TempDir()), f, nil)
	ctx := context.Background()

	var mu sync.Mutex
	seen := map[string][]tasks.Phase{}
	unsub := d.Subscribe(func(r tasks.Run, ev tasks.Event) {
		mu.Lock()
		seen[ev.Run] = append(seen[ev.Run], ev.Phase)
		mu.Unlock()
		if r.Name != ev.Run {
			panic("subscriber got a mismatched run")
		}
	})
	defer unsub()

	var names []string
	for i := range 5 {
		r := submit(t, d, f.echo, fmt.Sprintf(`{"message":"%d"}`, i))
		names = append(names, r.Name)
		wait(t, d, r.Name)
	}
	_, _, err := d.Submit(ctx, dispatch.SubmitRequest{Task: f.echo, Inputs: json.RawMessage(`{}`), Caller: identity.Identity{Subject: "bob"}})
	require.NoError(t, err)

	var got []string
	cursor := ""
	for {
		page, next, err := d.List(ctx, dispatch.ListOptions{Owner: "alice", Limit: 2, Cursor: cursor})
		require.NoError(t, err)
		for _, r := range page {
			got = append(got, r.Name)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	require.Equal(t, []string{names[4], names[3], names[2], names[1], names[0]}, got)
	_, _, err = d.List(ctx, dispatch.ListOptions{Cursor: "garbage!"})
	require.ErrorIs(t, err, dispatch.ErrBadCursor)
	page, _, err := d.List(ctx, dispatch.ListOptions{Phases: []tasks.Phase{tasks.PhaseSucceeded}, Task: "demo/development/echo"})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(page), 5)

	want := []tasks.Phase{tasks.PhaseQueued, tasks.PhaseInitializing, tasks.PhaseRunning, tasks.PhaseSucceeded}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range names {
			if fmt.Sprint(seen[n]) != fmt.Sprint(want) {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond)
}

func TestGPUDevicesAndNodes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	gpus, err := discovery.ParseDeclaredGPUs("A100:2")
	require.NoError(t, err)
	d := start(t, openStore(t, t.TempDir()), f, func(c *dispatch.Config) { c.Node.GPUs = gpus })
	ctx := context.Background()
	blocker := submit(t, d, f.sleep, `{"seconds":30}`)
	waitPhase(t, d, blocker.Name, tasks.PhaseRunning)
	run := submit(t, d, f.gpu, `{}`)
	done := wait(t, d, run.Name)
	require.Equal(t, tasks.PhaseSucceeded, done.Phase, done.Error)
	require.Len(t, done.Devices, 1)
	var out echoOut
	require.NoError(t, json.Unmarshal(done.Outputs, &out))
	require.Equal(t, done.Devices[0], out.Devices)

	nodes, err := d.Nodes(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	require.True(t, nodes[0].Healthy)
	require.Equal(t, 2, nodes[0].Free["A100-40GB"]+nodes[0].Free["A100"]+nodes[0].Free["A100-80GB"], "%v", nodes[0].Free)
	require.Equal(t, []string{blocker.Name}, nodes[0].Runs)

	q, err := d.Queue(ctx)
	require.NoError(t, err)
	require.True(t, q.Leader)
	require.Equal(t, 1, q.Runs[tasks.PhaseRunning])
	_, err = d.Abort(ctx, blocker.Name, "")
	require.NoError(t, err)
}

// TestCrashRecovery loses a node agent mid-attempt (its store handle is
// closed under it, as a killed process would leave things) and starts a new
// process on the same database and node ID: the attempt goes back to the
// queue and a second attempt finishes it, exactly once.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	st1, err := sqlite.OpenDir(context.Background(), dir)
	require.NoError(t, err)
	d1 := start(t, st1, f, nil)
	run := submit(t, d1, f.flaky, `{}`)
	blocked := submit(t, d1, f.sleep, `{"seconds":60}`)
	queued := submit(t, d1, f.gpu, `{}`)
	waitPhase(t, d1, blocked.Name, tasks.PhaseRunning)
	wait(t, d1, run.Name)
	waitPhase(t, d1, queued.Name, tasks.PhaseWaitingForResources)
	require.NoError(t, st1.Close()) // the "crash": nothing more reaches the database

	st2 := openStore(t, dir)
	d2 := start(t, st2, f, nil)
	// Sleep has no retries, but a restart is not its failure: the
	// interrupted attempt goes back to the queue.
	sr, err := st2.GetRun(context.Background(), blocked.Name)
	require.NoError(t, err)
	require.NotEqual(t, tasks.PhaseFailed, sr.Phase, sr.Error)
	require.Zero(t, sr.Failures)
	require.Equal(t, 1, sr.Interruptions)
	require.True(t, sr.Attempts[0].Interrupted)
	require.Contains(t, sr.Attempts[0].Error, "node-1 restarted during attempt 1")
	got, err := d2.Get(context.Background(), queued.Name)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseWaitingForResources, got.Phase, "queued runs survive")
	got, err = d2.Get(context.Background(), run.Name)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseSucceeded, got.Phase)
}

func TestCrashRecoveryRetries(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	st1, err := sqlite.OpenDir(context.Background(), dir)
	require.NoError(t, err)
	d1 := start(t, st1, f, nil)
	// flaky with failures 0 would finish at once; a long sleep in the
	// retried task is what we need: use the gate below.
	gate := make(chan struct{})
	var calls atomic.Int32
	reg := f.reg
	hold := tasks.MustDefine("demo", "development", "hold", func(ctx context.Context, in struct{}) (map[string]int, error) {
		n := calls.Add(1)
		if n == 1 {
			<-gate // attempt 1 never returns before the crash
		}
		ri, _ := tasks.RunInfoFromContext(ctx)
		return map[string]int{"attempt": ri.Attempt}, nil
	}, &tasks.Options{Retry: fastRetry})
	reg.MustRegister(hold)
	run := submit(t, d1, hold.Definition(), `{}`)
	waitPhase(t, d1, run.Name, tasks.PhaseRunning)
	require.NoError(t, st1.Close())

	d2 := start(t, openStore(t, dir), f, nil)
	done := wait(t, d2, run.Name)
	close(gate) // attempt 1 now returns into a closed store: it must not count
	require.Equal(t, tasks.PhaseSucceeded, done.Phase)
	require.JSONEq(t, `{"attempt":2}`, string(done.Outputs))
	require.Len(t, done.Attempts, 2)
	require.Equal(t, tasks.PhaseFailed, done.Attempts[0].Phase)
	require.Contains(t, done.Attempts[0].Error, "restarted")
	time.Sleep(50 * time.Millisecond)
	again, err := d2.Get(context.Background(), run.Name)
	require.NoError(t, err)
	require.JSONEq(t, `{"attempt":2}`, string(again.Outputs))
}

// TestNodeLoss runs an API process and two node agents on one database:
// the agent running a run stops heartbeating, and the run finishes on the
// other node as a new attempt.
func TestNodeLoss(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := openStore(t, t.TempDir())
	gate := make(chan struct{})
	defer close(gate)
	stick := tasks.MustDefine("demo", "development", "stick", func(ctx context.Context, in struct{}) (map[string]string, error) {
		ri, _ := tasks.RunInfoFromContext(ctx)
		if ri.Node == "node-a" {
			<-gate
		}
		return map[string]string{"node": ri.Node}, nil
	}, &tasks.Options{Retry: fastRetry})
	f.reg.MustRegister(stick)

	const timeout = time.Second
	api := start(t, st, f, func(c *dispatch.Config) { c.Role = dispatch.RoleAPI; c.Node.ID = "api"; c.HeartbeatTimeout = timeout })
	agentA, err := dispatch.New(dispatch.Config{Store: st, Registry: f.reg, Logger: quietLogger(), Role: dispatch.RoleAgent,
		Node: dispatch.NodeConfig{ID: "node-a"}, HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: timeout})
	require.NoError(t, err)
	require.NoError(t, agentA.Start(context.Background()))

	run := submit(t, api, stick.Definition(), `{}`)
	waitPhase(t, api, run.Name, tasks.PhaseRunning)
	dispatch.KillAgentForTest(agentA)
	start(t, st, f, func(c *dispatch.Config) {
		c.Role = dispatch.RoleAgent
		c.Node.ID = "node-b"
		c.HeartbeatTimeout = timeout
	})

	done := wait(t, api, run.Name)
	require.Equal(t, tasks.PhaseSucceeded, done.Phase, done.Error)
	require.JSONEq(t, `{"node":"node-b"}`, string(done.Outputs))
	require.Len(t, done.Attempts, 2)
	require.Equal(t, "node-a", done.Attempts[0].Node)
	require.Contains(t, done.Attempts[0].Error, "node node-a stopped heartbeating")
	require.True(t, done.Attempts[0].Interrupted, "a lost node interrupts its attempts")
}

func TestCloseRequeuesRunningAttempts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	st := openStore(t, dir)
	d, err := dispatch.New(dispatch.Config{Store: st, Registry: f.reg, Logger: quietLogger(), Node: dispatch.NodeConfig{ID: "n"}})
	require.NoError(t, err)
	require.NoError(t, d.Start(context.Background()))
	run := submit(t, d, f.sleep, `{"seconds":30}`)
	waitPhase(t, d, run.Name, tasks.PhaseRunning)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.NoError(t, d.Close(ctx))
	_, _, err = d.Submit(context.Background(), dispatch.SubmitRequest{Task: f.echo, Caller: alice})
	require.ErrorIs(t, err, dispatch.ErrClosed)

	got, err := st.GetRun(context.Background(), run.Name)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseQueued, got.Phase)
	require.Zero(t, got.Failures, "a shutdown is not the task's failure")
	require.Equal(t, tasks.PhaseAborted, got.Attempts[0].Phase)
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := openStore(t, t.TempDir())
	tests := []struct {
		name string
		cfg  dispatch.Config
		want string
	}{
		{"no store", dispatch.Config{Registry: f.reg}, "Store is required"},
		{"no registry", dispatch.Config{Store: st}, "Registry is required"},
		{"bad role", dispatch.Config{Store: st, Registry: f.reg, Role: 7}, "Role"},
		{"timeout below interval", dispatch.Config{Store: st, Registry: f.reg, HeartbeatInterval: time.Second, HeartbeatTimeout: time.Second}, "must exceed"},
		{"negative grace", dispatch.Config{Store: st, Registry: f.reg, AbortGrace: -1}, "AbortGrace is negative"},
		{"negative quota", dispatch.Config{Store: st, Registry: f.reg, Quotas: map[string]int{"p": -1}}, "Quotas"},
		{"negative delete after", dispatch.Config{Store: st, Registry: f.reg, DeleteAfter: -time.Hour}, "DeleteAfter -1h0m0s is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dispatch.New(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestWebhookOutboxAndPurge(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := openStore(t, t.TempDir())
	d := start(t, st, f, func(c *dispatch.Config) { c.Retention = time.Millisecond })
	ctx := context.Background()
	run, _, err := d.Submit(ctx, dispatch.SubmitRequest{Task: f.echo, Inputs: json.RawMessage(`{"message":"hook"}`), Caller: alice,
		Webhook: "https://example.com/hook", WebhookEvents: []string{"start", "completed"}})
	require.NoError(t, err)
	done := wait(t, d, run.Name)
	require.Equal(t, tasks.PhaseSucceeded, done.Phase)

	ds, err := st.ListDeliveries(ctx, run.Name)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	require.Equal(t, []string{"start", "completed"}, []string{ds[0].Event, ds[1].Event})
	require.Equal(t, "https://example.com/hook", ds[1].URL)
	var payload tasks.Run
	require.NoError(t, json.Unmarshal(ds[1].Payload, &payload))
	require.JSONEq(t, string(done.Outputs), string(payload.Outputs))

	// Retention of 1ms: the leader's next purge clears inputs and outputs.
	require.Eventually(t, func() bool {
		r, err := d.Get(ctx, run.Name)
		return err == nil && r.Inputs == nil && r.Outputs == nil
	}, 5*time.Second, 20*time.Millisecond)
	r, err := d.Get(ctx, run.Name)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseSucceeded, r.Phase, "the record stays")
}

// TestDeleteAfter: the leader deletes terminal runs older than DeleteAfter
// whole, and leaves a running one.
func TestDeleteAfter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := openStore(t, t.TempDir())
	d := start(t, st, f, func(c *dispatch.Config) { c.DeleteAfter = time.Millisecond })
	ctx := context.Background()
	long := submit(t, d, f.sleep, `{"seconds":30}`)
	waitPhase(t, d, long.Name, tasks.PhaseRunning)
	done := submit(t, d, f.echo, `{"message":"x"}`)
	require.Equal(t, tasks.PhaseSucceeded, wait(t, d, done.Name).Phase)
	// The purge runs every second (a tenth of 1ms, at least 1s).
	require.Eventually(t, func() bool {
		_, err := d.Get(ctx, done.Name)
		return errors.Is(err, dispatch.ErrNotFound)
	}, 5*time.Second, 20*time.Millisecond)
	r, err := d.Get(ctx, long.Name)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseRunning, r.Phase)
	_, err = d.Abort(ctx, long.Name, "")
	require.NoError(t, err)
}

// TestLeaderPanicIsNotSwallowed: a panic inside the scheduling loop, while
// the leader holds its lock, must reach the top of the goroutine (and so
// crash the process, to be restarted) instead of hanging the scheduler in
// its own cleanup while the API goes on accepting runs.
func TestLeaderPanicIsNotSwallowed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d, err := dispatch.New(dispatch.Config{Store: openStore(t, t.TempDir()), Registry: f.reg, Logger: quietLogger(),
		Node: dispatch.NodeConfig{ID: "node-1", MilliCPU: 64000, MemoryBytes: 64 << 30}})
	require.NoError(t, err)
	got := make(chan any, 1)
	go func() { got <- dispatch.LeadWithBrokenRunForTest(t.Context(), d) }()
	select {
	case p := <-got:
		require.NotNil(t, p, "the leader returned without panicking")
	case <-time.After(10 * time.Second):
		t.Fatal("the leader hung after a panic")
	}
}

// TestStandbySchedulerHoldsNothing: a scheduler candidate that does not
// hold the lease (a second API process) must not keep the notifications
// and submissions it sees for a step it never runs: they would pile up
// for as long as another process leads.
func TestStandbySchedulerHoldsNothing(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	f := newFixture(t)
	leader := start(t, st, f, func(c *dispatch.Config) { c.Node.ID = "node-a" })
	require.Eventually(t, func() bool { return dispatch.LeadingForTest(leader) }, 5*time.Second, 10*time.Millisecond)
	standby := start(t, st, f, func(c *dispatch.Config) { c.Role = dispatch.RoleAPI; c.Node.ID = "api-b" })
	var names []string
	for range 50 {
		names = append(names, submit(t, standby, f.echo, `{"message":"hi"}`).Name)
	}
	for _, n := range names {
		require.Equal(t, tasks.PhaseSucceeded, wait(t, standby, n).Phase)
	}
	require.False(t, dispatch.LeadingForTest(standby))
	require.Zero(t, dispatch.LeaderBacklogForTest(standby), "the standby kept what it saw")
}

// oneGPU are the options of a task that takes the one GPU of startOneGPU's
// node.
var oneGPU = &tasks.Options{Resources: tasks.Resources{GPU: "A100:1"}, Retry: &tasks.NoRetry}

// startOneGPU starts a dispatcher whose node has one A100.
func startOneGPU(t *testing.T, f *fixture) *dispatch.Dispatcher {
	t.Helper()
	gpus, err := discovery.ParseDeclaredGPUs("A100:1")
	require.NoError(t, err)
	return start(t, openStore(t, t.TempDir()), f, func(c *dispatch.Config) { c.Node.GPUs = gpus })
}

// TestFreedSlotsNeverOvercommit: the leader hands a node's devices to the
// next run as soon as a function returns, before its outcome is written;
// a node with one GPU must still never run two GPU functions at once.
func TestFreedSlotsNeverOvercommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var running, peak atomic.Int64
	one := tasks.MustDefine("demo", "development", "one-gpu", func(ctx context.Context, in struct{}) (struct{}, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(time.Millisecond)
		return struct{}{}, nil
	}, oneGPU)
	f.reg.MustRegister(one)
	d := startOneGPU(t, f)
	var names []string
	for range 40 {
		names = append(names, submit(t, d, one.Definition(), `{}`).Name)
	}
	for _, n := range names {
		require.Equal(t, tasks.PhaseSucceeded, wait(t, d, n).Phase)
	}
	require.Equal(t, int64(1), peak.Load(), "two functions held the one GPU at once")
}

// TestFreedAttemptMustMatch: the leader frees a slot early only for the
// attempt it holds there; a notice about another attempt changes nothing,
// and the right one hands the slot on at once.
func TestFreedAttemptMustMatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	gate := make(chan struct{})
	block := tasks.MustDefine("demo", "development", "block-gpu", func(ctx context.Context, in struct{}) (struct{}, error) {
		select {
		case <-gate:
		case <-ctx.Done():
		}
		return struct{}{}, nil
	}, oneGPU)
	f.reg.MustRegister(block)
	d := startOneGPU(t, f)
	t.Cleanup(func() { close(gate) }) // before d closes: cleanups run last first
	first := submit(t, d, block.Definition(), `{}`)
	waitPhase(t, d, first.Name, tasks.PhaseRunning)
	second := submit(t, d, block.Definition(), `{}`)
	waitPhase(t, d, second.Name, tasks.PhaseWaitingForResources)

	dispatch.ReleasedForTest(d, first.Name, 2) // not its attempt
	time.Sleep(200 * time.Millisecond)
	got, err := d.Get(context.Background(), second.Name)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseWaitingForResources, got.Phase, "a notice about another attempt freed the GPU")

	dispatch.ReleasedForTest(d, first.Name, 1)
	waitPhase(t, d, second.Name, tasks.PhaseRunning)
}

// refusingStore refuses every batch of changes that holds the run
// "poison", and holds the writer on the run "gate" until gate closes.
type refusingStore struct {
	store.Store
	entered chan struct{}
	gate    chan struct{}
}

func (s *refusingStore) Transition(ctx context.Context, ts []store.Transition) ([]store.TransitionResult, error) {
	for _, t := range ts {
		switch t.Run {
		case "gate":
			close(s.entered)
			<-s.gate
		case "poison":
			return nil, errors.New("refused")
		}
	}
	return s.Store.Transition(ctx, ts)
}

// TestRefusedChangeDoesNotSinkItsBatch: the transition writer commits the
// agents' concurrent changes in one batch; when the store refuses that
// batch for one change, the others are committed one by one.
func TestRefusedChangeDoesNotSinkItsBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := openStore(t, t.TempDir())
	st := &refusingStore{Store: base, entered: make(chan struct{}), gate: make(chan struct{})}
	d, err := dispatch.New(dispatch.Config{Store: st, Registry: f.reg, Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	var names []string
	for i := range 3 {
		name := fmt.Sprintf("good-%d", i)
		_, err := base.CreateRuns(context.Background(), []store.NewRun{{Name: name, Project: "demo", Domain: "development",
			Task: "echo", Caller: store.Caller{Subject: "alice"}, CreatedAt: time.Now()}})
		require.NoError(t, err)
		names = append(names, name)
	}
	wait := func(name string) store.Transition {
		return store.Transition{Run: name, From: []tasks.Phase{tasks.PhaseQueued}, To: tasks.PhaseWaitingForResources, At: time.Now()}
	}
	go func() { _, _ = dispatch.TransitionForTest(d, wait("gate")) }()
	<-st.entered // the writer is held: what comes next queues up as one batch
	type result struct {
		name string
		res  store.TransitionResult
		err  error
	}
	results := make(chan result, 4)
	for _, n := range append([]string{"poison"}, names...) {
		go func() {
			r, err := dispatch.TransitionForTest(d, wait(n))
			results <- result{n, r, err}
		}()
	}
	time.Sleep(100 * time.Millisecond) // let all four queue behind the gate
	close(st.gate)
	for range 4 {
		r := <-results
		if r.name == "poison" {
			require.Error(t, r.err)
			continue
		}
		require.NoError(t, r.err, r.name)
		require.True(t, r.res.Applied, r.name)
	}
	for _, n := range names {
		got, err := base.GetRun(context.Background(), n)
		require.NoError(t, err)
		require.Equal(t, tasks.PhaseWaitingForResources, got.Phase, n)
	}
}

// flakyOutcomes refuses the first two batches that end a run, as a store
// that lost its connection for a moment would.
type flakyOutcomes struct {
	store.Store
	refused atomic.Int64
}

func (s *flakyOutcomes) Transition(ctx context.Context, ts []store.Transition) ([]store.TransitionResult, error) {
	for _, t := range ts {
		if t.To.Terminal() && s.refused.Load() < 2 {
			s.refused.Add(1)
			return nil, errors.New("connection lost")
		}
	}
	return s.Store.Transition(ctx, ts)
}

// TestOutcomeRecordedDespiteAPassingStoreFailure: an outcome the store
// refuses for a moment is recorded on a later try, instead of leaving the
// run running for good.
func TestOutcomeRecordedDespiteAPassingStoreFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := &flakyOutcomes{Store: openStore(t, t.TempDir())}
	d := start(t, st, f, nil)
	run := submit(t, d, f.echo, `{"message":"hi"}`)
	require.Equal(t, tasks.PhaseSucceeded, wait(t, d, run.Name).Phase)
	require.EqualValues(t, 2, st.refused.Load())
}
