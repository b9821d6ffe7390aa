package callback_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/fakedns"
	"github.com/taskgate/taskgate/internal/stdwebhook"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/callback"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// clock is the worker's injected clock: tests step it past the retry plan
// instead of sleeping. The Deliverer keeps the real clock, because the
// receiver checks webhook-timestamp against its own.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var quietLogger = slog.New(slog.DiscardHandler)

func openStore(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newWorker(t testing.TB, outbox callback.Outbox, cfg callback.WorkerConfig) *callback.Worker {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger
	}
	w, err := callback.NewWorker(newDeliverer(t, callback.Config{}), outbox, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func enqueue(t testing.TB, st store.Store, run, url string, at time.Time) store.Delivery {
	t.Helper()
	d, err := st.EnqueueDelivery(context.Background(), store.NewDelivery{
		Run: run, URL: url, Event: store.WebhookCompleted,
		Payload: json.RawMessage(fmt.Sprintf(`{"name":%q,"phase":"succeeded"}`, run)), CreatedAt: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func deliveries(t testing.TB, st store.Store, run string) []store.Delivery {
	t.Helper()
	ds, err := st.ListDeliveries(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func pass(t testing.TB, w *callback.Worker) int {
	t.Helper()
	n, err := w.DeliverDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func statuses(d store.Delivery) []int {
	out := make([]int, len(d.Attempts))
	for i, a := range d.Attempts {
		out[i] = a.StatusCode
	}
	return out
}

func sameInts(a, b []int) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// The receiver fails three times, then accepts: exactly one successful
// delivery, the same webhook-id and body on every attempt, each attempt
// visible on the run, retries on the plan.
func TestWorkerRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "outbox.db"))
	defer st.Close()
	rcv := newReceiver(t, []string{testSecret.Encode()}, answer(500), answer(502), answer(429), answer(204))
	t0 := time.Now().Truncate(time.Second)
	clk := &clock{t: t0}
	w := newWorker(t, st, callback.WorkerConfig{
		Schedule: []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, time.Hour},
		Jitter:   -1, Now: clk.Now,
	})
	dl := enqueue(t, st, "run-retry", rcv.srv.URL+"/hook", t0)

	steps := []struct {
		at       time.Duration // clock offset from t0
		attempts int           // attempts this pass should make
		next     time.Duration // NextAttemptAt offset afterwards (0: done)
	}{
		{0, 1, time.Minute},
		{30 * time.Second, 0, time.Minute}, // not due yet
		{time.Minute, 1, 6 * time.Minute},
		{6 * time.Minute, 1, 36 * time.Minute},
		{36 * time.Minute, 1, 0},
		{10 * time.Hour, 0, 0}, // delivered: never again
	}
	for i, s := range steps {
		clk.Set(t0.Add(s.at))
		if n := pass(t, w); n != s.attempts {
			t.Fatalf("step %d at +%v: %d attempts, want %d", i, s.at, n, s.attempts)
		}
		d := deliveries(t, st, "run-retry")[0]
		if s.next != 0 && !d.NextAttemptAt.Equal(t0.Add(s.next)) {
			t.Fatalf("step %d: next attempt at +%v, want +%v", i, d.NextAttemptAt.Sub(t0), s.next)
		}
	}

	d := deliveries(t, st, "run-retry")[0]
	if d.State != store.DeliveryDelivered || !sameInts(statuses(d), []int{500, 502, 429, 204}) {
		t.Fatalf("delivery state %s attempts %v, want delivered after 500 502 429 204", d.State, statuses(d))
	}
	for i, a := range d.Attempts[:3] {
		if a.Error == "" || a.Done {
			t.Fatalf("failed attempt %d recorded as %+v", i, a)
		}
	}
	if last := d.Attempts[3]; !last.Done || last.Error != "" {
		t.Fatalf("last attempt recorded as %+v, want done without error", last)
	}

	got := rcv.got()
	if len(got) != 4 {
		t.Fatalf("receiver saw %d requests, want 4", len(got))
	}
	for i, r := range got {
		if r.id != dl.ID || string(r.body) != string(got[0].body) {
			t.Fatalf("request %d: id %q body %s; want id %q and the first body", i, r.id, r.body, dl.ID)
		}
	}
	var p callback.Payload
	if err := json.Unmarshal(got[0].body, &p); err != nil || p.Type != callback.TypeRunCompleted || !p.Timestamp.Equal(t0) {
		t.Fatalf("payload %s: %v", got[0].body, err)
	}
}

// Jitter only delays a retry, by up to Jitter × the step.
func TestWorkerJitter(t *testing.T) {
	t.Parallel()
	for _, r := range []float64{0, 0.5, 0.999} {
		st := openStore(t, filepath.Join(t.TempDir(), "outbox.db"))
		rcv := newReceiver(t, []string{testSecret.Encode()}, answer(500))
		t0 := time.Now().Truncate(time.Second)
		w := newWorker(t, st, callback.WorkerConfig{
			Schedule: []time.Duration{time.Minute}, Jitter: 0.2,
			Now: func() time.Time { return t0 }, Rand: func() float64 { return r },
		})
		enqueue(t, st, "run-jitter", rcv.srv.URL, t0)
		pass(t, w)
		want := t0.Add(time.Minute + time.Duration(r*0.2*float64(time.Minute)))
		if got := deliveries(t, st, "run-jitter")[0].NextAttemptAt; !got.Equal(want) {
			t.Errorf("rand %v: next attempt at +%v, want +%v", r, got.Sub(t0), want.Sub(t0))
		}
		st.Close()
	}
}

func TestWorkerStopsOn410(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "outbox.db"))
	defer st.Close()
	rcv := newReceiver(t, []string{testSecret.Encode()}, answer(410))
	t0 := time.Now()
	clk := &clock{t: t0}
	w := newWorker(t, st, callback.WorkerConfig{Now: clk.Now})
	enqueue(t, st, "run-gone", rcv.srv.URL, t0)

	for _, at := range []time.Duration{0, time.Minute, 2 * time.Hour, 48 * time.Hour} {
		clk.Set(t0.Add(at))
		pass(t, w)
	}
	d := deliveries(t, st, "run-gone")[0]
	if d.State != store.DeliveryFailed || !sameInts(statuses(d), []int{410}) || !d.Attempts[0].Done {
		t.Fatalf("delivery %s with attempts %+v, want failed after one 410", d.State, d.Attempts)
	}
	if n := len(rcv.got()); n != 1 {
		t.Fatalf("receiver saw %d requests, want 1", n)
	}
}

func TestWorkerHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		retryAfter string
		wantNext   time.Duration
	}{
		{"later than plan", "120", 120 * time.Second},
		{"earlier than plan is ignored", "1", 5 * time.Second},
		{"capped", "86400", 10 * time.Minute},
		{"http date", "", 3 * time.Minute}, // filled below
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := openStore(t, filepath.Join(t.TempDir(), "outbox.db"))
			defer st.Close()
			t0 := time.Now().Truncate(time.Second)
			ra := tc.retryAfter
			if ra == "" {
				ra = t0.Add(3 * time.Minute).Format(http.TimeFormat)
			}
			rcv := newReceiver(t, []string{testSecret.Encode()}, answer(503, "Retry-After", ra), answer(200))
			clk := &clock{t: t0}
			w := newWorker(t, st, callback.WorkerConfig{
				Schedule: []time.Duration{5 * time.Second, time.Hour}, Jitter: -1,
				MaxRetryAfter: 10 * time.Minute, Now: clk.Now,
			})
			enqueue(t, st, "run-ra", rcv.srv.URL, t0)

			pass(t, w)
			d := deliveries(t, st, "run-ra")[0]
			// An HTTP date has whole seconds and the attempt took a moment:
			// allow a second of slack on the date case only.
			if off := d.NextAttemptAt.Sub(t0); off < tc.wantNext-time.Second || off > tc.wantNext {
				t.Fatalf("next attempt at +%v, want +%v", off, tc.wantNext)
			}
			clk.Set(d.NextAttemptAt.Add(-time.Second))
			if n := pass(t, w); n != 0 {
				t.Fatalf("retried %d times before Retry-After", n)
			}
			clk.Set(d.NextAttemptAt)
			if n := pass(t, w); n != 1 {
				t.Fatalf("%d attempts at the retry point, want 1", n)
			}
			if d := deliveries(t, st, "run-ra")[0]; d.State != store.DeliveryDelivered {
				t.Fatalf("state %s, want delivered", d.State)
			}
		})
	}
}

func TestWorkerGivesUpWhenPlanExhausted(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "outbox.db"))
	defer st.Close()
	rcv := newReceiver(t, []string{testSecret.Encode()}, answer(500))
	t0 := time.Now()
	clk := &clock{t: t0}
	w := newWorker(t, st, callback.WorkerConfig{Schedule: []time.Duration{time.Second, time.Second}, Jitter: -1, Now: clk.Now})
	enqueue(t, st, "run-exhaust", rcv.srv.URL, t0)
	for _, at := range []time.Duration{0, time.Second, 2 * time.Second, time.Hour} {
		clk.Set(t0.Add(at))
		pass(t, w)
	}
	d := deliveries(t, st, "run-exhaust")[0]
	if d.State != store.DeliveryFailed || len(d.Attempts) != 3 || !strings.Contains(d.Attempts[2].Error, "giving up after 3 attempts") {
		t.Fatalf("delivery %s attempts %+v, want failed after 3 with the plan exhausted", d.State, d.Attempts)
	}
}

// The SSRF guard refuses a loopback receiver once and for all: the failure
// is permanent and recorded on the run.
func TestWorkerGuardRefusalIsRecorded(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "outbox.db"))
	defer st.Close()
	rcv := newReceiver(t, []string{testSecret.Encode()}, answer(200))
	d, err := callback.New(callback.Config{Secrets: []stdwebhook.Secret{testSecret}, Resolver: fakedns.Resolver(t, netip.MustParseAddr("127.0.0.1"))}) // guard on
	if err != nil {
		t.Fatal(err)
	}
	w, err := callback.NewWorker(d, st, callback.WorkerConfig{Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, st, "run-ssrf", strings.Replace(rcv.srv.URL, "127.0.0.1", "receiver.test", 1), time.Now())
	pass(t, w)
	dl := deliveries(t, st, "run-ssrf")[0]
	if dl.State != store.DeliveryFailed || len(dl.Attempts) != 1 || !strings.Contains(dl.Attempts[0].Error, "not allowed (loopback)") {
		t.Fatalf("delivery %s attempts %+v, want failed with the guard's reason", dl.State, dl.Attempts)
	}
	if len(rcv.got()) != 0 {
		t.Fatal("the guarded worker reached the receiver")
	}
}

// A worker stopped while a callback waits for its retry, and a new process
// on the same SQLite file, still deliver it, with the same webhook-id.
func TestWorkerRestartMidRetryStillDelivers(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "taskgate.db")
	rcv := newReceiver(t, []string{testSecret.Encode()}, answer(503), answer(503), answer(200))
	cfg := callback.WorkerConfig{Schedule: []time.Duration{150 * time.Millisecond, 150 * time.Millisecond, time.Hour}, Jitter: -1, PollInterval: 10 * time.Millisecond}

	// First life: one failed attempt, then the process stops.
	st := openStore(t, path)
	dl := enqueue(t, st, "run-restart", rcv.srv.URL, time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	w1 := newWorker(t, st, cfg)
	go func() { stopped <- w1.Run(ctx) }()
	w1.Notify()
	waitFor(t, func() bool { return len(deliveries(t, st, "run-restart")[0].Attempts) == 1 })
	cancel()
	if err := <-stopped; err != nil {
		t.Fatalf("Run returned %v on shutdown", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if d := deliveries(t, openStoreClosed(t, path), "run-restart")[0]; d.State != store.DeliveryPending {
		t.Fatalf("state after the stop = %s, want pending", d.State)
	}

	// Second life: a new store and worker on the same file.
	st2 := openStore(t, path)
	defer st2.Close()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	w2 := newWorker(t, st2, cfg)
	go func() { _ = w2.Run(ctx2) }()
	waitFor(t, func() bool { return deliveries(t, st2, "run-restart")[0].State == store.DeliveryDelivered })

	d := deliveries(t, st2, "run-restart")[0]
	if !sameInts(statuses(d), []int{503, 503, 200}) {
		t.Fatalf("attempts %v, want 503 503 200", statuses(d))
	}
	for i, r := range rcv.got() {
		if r.id != dl.ID {
			t.Fatalf("request %d had webhook-id %q, want %q", i, r.id, dl.ID)
		}
	}
}

// openStoreClosed opens path for one read and closes it when the test ends.
func openStoreClosed(t *testing.T, path string) store.Store {
	st := openStore(t, path)
	t.Cleanup(func() { st.Close() })
	return st
}

// A run that asked for start and completed callbacks gets both, built by the
// store in the transactions of its phase changes and sent by the worker.
func TestWorkerDeliversRunLifecycle(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "taskgate.db"))
	defer st.Close()
	rcv := newReceiver(t, []string{testSecret.Encode()}, answer(204))
	ctx := context.Background()
	now := time.Now()
	events, err := callback.ParseEvents([]string{"start,completed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateRuns(ctx, []store.NewRun{{
		Name: "run-life", Project: "demo", Domain: "development", Task: "echo", Version: "v1",
		Caller: store.Caller{Subject: "alice"}, Inputs: json.RawMessage(`{"message":"hi"}`),
		Webhook: rcv.srv.URL + "/hook", WebhookEvents: events.Names(), CreatedAt: now,
	}}); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []store.Transition{
		{Run: "run-life", To: tasks.PhaseInitializing, At: now, Bind: &store.Binding{Node: "n1"}},
		{Run: "run-life", Attempt: 1, To: tasks.PhaseRunning, At: now.Add(time.Millisecond)},
		{Run: "run-life", Attempt: 1, To: tasks.PhaseSucceeded, At: now.Add(2 * time.Millisecond), Outputs: json.RawMessage(`{"message":"hi"}`)},
	} {
		if res, err := st.Transition(ctx, []store.Transition{tr}); err != nil || !res[0].Applied {
			t.Fatalf("transition to %s: %v", tr.To, err)
		}
	}

	w := newWorker(t, st, callback.WorkerConfig{})
	if n := pass(t, w); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
	types := map[string]tasks.Phase{}
	for _, r := range rcv.got() {
		var p struct {
			Type string    `json:"type"`
			Data tasks.Run `json:"data"`
		}
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		types[p.Type] = p.Data.Phase
	}
	if types[callback.TypeRunStarted] != tasks.PhaseRunning || types[callback.TypeRunCompleted] != tasks.PhaseSucceeded || len(types) != 2 {
		t.Fatalf("callbacks %v, want run.started (running) and run.completed (succeeded)", types)
	}
	for _, d := range deliveries(t, st, "run-life") {
		if d.State != store.DeliveryDelivered {
			t.Fatalf("delivery %s is %s", d.Event, d.State)
		}
	}
}

// Two workers sharing one outbox deliver each callback once: claims are
// exclusive.
func TestWorkersShareOutbox(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "taskgate.db"))
	defer st.Close()
	rcv := newReceiver(t, []string{testSecret.Encode()}, answer(200))
	const n = 40
	now := time.Now()
	for i := range n {
		enqueue(t, st, fmt.Sprintf("run-%d", i), rcv.srv.URL, now)
	}
	var wg sync.WaitGroup
	for range 2 {
		w := newWorker(t, st, callback.WorkerConfig{Concurrency: 4})
		wg.Go(func() { pass(t, w) })
	}
	wg.Wait()
	seen := map[string]int{}
	for _, r := range rcv.got() {
		seen[r.id]++
	}
	if len(seen) != n {
		t.Fatalf("%d distinct webhook-ids delivered, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("%s delivered %d times", id, c)
		}
	}
}

func TestNewWorkerValidates(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "taskgate.db"))
	defer st.Close()
	d := newDeliverer(t, callback.Config{})
	for name, cfg := range map[string]callback.WorkerConfig{
		"zero step":     {Schedule: []time.Duration{time.Second, 0}},
		"jitter over 1": {Jitter: 1.5},
		"negative":      {Concurrency: -1},
	} {
		if _, err := callback.NewWorker(d, st, cfg); err == nil {
			t.Errorf("%s: NewWorker accepted %+v", name, cfg)
		}
	}
	if _, err := callback.NewWorker(nil, st, callback.WorkerConfig{}); err == nil {
		t.Error("NewWorker accepted a nil Deliverer")
	}
}

// waitFor polls cond for up to 10 s: the worker runs on its own goroutine
// with real timers.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stopping the worker lets an attempt in flight finish and be recorded, so
// the receiver's 2xx is not lost and the callback not sent twice.
func TestWorkerGracefulStopRecordsInFlight(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "taskgate.db"))
	defer st.Close()
	arrived, release := make(chan struct{}), make(chan struct{})
	rcv := newReceiver(t, []string{testSecret.Encode()}, func(w http.ResponseWriter, _ *http.Request) {
		close(arrived)
		<-release
		w.WriteHeader(http.StatusOK)
	})
	enqueue(t, st, "run-stop", rcv.srv.URL, time.Now())
	w := newWorker(t, st, callback.WorkerConfig{PollInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()

	<-arrived
	cancel()
	select {
	case <-stopped:
		t.Fatal("Run returned while an attempt was in flight")
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if d := deliveries(t, st, "run-stop")[0]; d.State != store.DeliveryDelivered || len(d.Attempts) != 1 {
		t.Fatalf("after the stop: %s with %d attempts, want delivered with 1", d.State, len(d.Attempts))
	}
}
