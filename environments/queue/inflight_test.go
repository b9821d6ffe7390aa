package queue_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/environments/queue"
)

// gateApp is an app whose POST /gate route and "held" operation keep every
// request until the test lets one go, counting how many are inside at once.
type gateApp struct {
	entered chan string   // a request came in: its X-Queue-Request-Id, "" when direct
	release chan struct{} // each value lets one request finish
	done    chan struct{} // closed at the end of the test: every request finishes
	in      atomic.Int32
	peak    atomic.Int32 // most requests inside at once
}

func newGateApp() *gateApp {
	return &gateApp{entered: make(chan string, 16), release: make(chan struct{}), done: make(chan struct{})}
}

// start serves g in a queueStack; when t ends every held request is let go
// before the server closes, so a failing test does not hang in Close.
func (g *gateApp) start(t *testing.T, n int, wait time.Duration) *queueStack {
	t.Helper()
	s := queueStart(t, t.TempDir(), "", g.env(n, wait), nil)
	t.Cleanup(func() { close(g.done) })
	return s
}

// hold is the body of every held request.
func (g *gateApp) hold(ctx context.Context, id string) {
	n := g.in.Add(1)
	defer g.in.Add(-1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	g.entered <- id
	select {
	case <-g.release:
	case <-g.done:
	case <-ctx.Done():
	}
}

// GateInput and GateOutput are the held operation of gateApp.
type GateInput struct {
	RequestID string `header:"X-Queue-Request-Id"`
}

type GateOutput struct{}

// env is an app environment over g with the queue on and at most n in
// flight; direct requests wait up to wait for a slot.
func (g *gateApp) env(n int, wait time.Duration) *environments.AppEnvironment {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /gate", func(w http.ResponseWriter, r *http.Request) {
		g.hold(r.Context(), r.Header.Get("X-Queue-Request-Id"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"status":"healthy"}`)
	})
	env := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "gen", Limits: environments.Limits{MaxInFlight: n, QueueTimeout: wait}},
		Handler:  mux,
		Queue:    queue.MustNew(queue.Config{}),
	})
	environments.Endpoint(env, "held", func(ctx context.Context, in *GateInput) (*GateOutput, error) {
		g.hold(ctx, in.RequestID)
		return &GateOutput{}, nil
	}, &environments.EndpointOptions{Method: http.MethodPost})
	return env
}

// direct sends a request in the background; its reply arrives on the
// channel.
func (s *queueStack) direct(method, path, token string) <-chan envtest.Reply {
	ch := make(chan envtest.Reply, 1)
	go func() {
		req, err := http.NewRequest(method, s.base+path, nil)
		if err != nil {
			ch <- envtest.Reply{Raw: err.Error()}
			return
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- envtest.Reply{Raw: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ch <- envtest.Reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(b)}
	}()
	return ch
}

// requireOpen checks that the routes that are not the app's own answer at
// once while the app's slots are all taken, though a request that waited
// for a slot would wait far longer than the deadline here.
func requireOpen(t *testing.T, s *queueStack, id string) {
	t.Helper()
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/health", http.StatusOK},
		{"/docs", http.StatusOK},
		{"/openapi.json", http.StatusOK},
		{s.requests(id, "/status"), http.StatusAccepted},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+c.path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+queueAlice)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, "%s must not wait for an in-flight slot", c.path)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
		require.Equal(t, c.status, resp.StatusCode, c.path)
	}
}

// receiveNone checks that no held request comes in for a while.
func receiveNone(t *testing.T, ch <-chan string, why string) {
	t.Helper()
	select {
	case id := <-ch:
		t.Fatalf("request %q came in: %s", id, why)
	case <-time.After(200 * time.Millisecond):
	}
}

// Direct requests that hold every slot keep a replay waiting, as a run in
// progress, until one of them finishes; the environment's other routes
// answer meanwhile.
func TestMaxInFlightCountsDirectRequestsAndReplaysTogether(t *testing.T) {
	t.Parallel()
	app := newGateApp()
	s := app.start(t, 2, 30*time.Second)

	// One request through the user's Handler, one through an operation.
	first := s.direct(http.MethodPost, "/gate", queueAlice)
	second := s.direct(http.MethodPost, "/held", queueAlice)
	require.Empty(t, queueReceive(t, app.entered))
	require.Empty(t, queueReceive(t, app.entered))

	// The submit itself is not counted: it is answered at once.
	id := s.submit("/gate", queueAlice, "")
	require.Eventually(t, func() bool {
		st := s.call(http.MethodGet, s.requests(id, "/status?logs=true"), queueAlice, "")
		logs, _ := st.Body["logs"].([]any)
		for _, l := range logs {
			if l.(map[string]any)["message"] == "waiting for an in-flight slot" {
				require.Equal(t, "IN_PROGRESS", st.Body["status"], "the replay started and waits for a slot")
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond)
	receiveNone(t, app.entered, "the replay entered while direct requests held both slots")
	requireOpen(t, s, id)

	app.release <- struct{}{}
	require.Equal(t, id, queueReceive(t, app.entered), "the replay takes the freed slot")
	app.release <- struct{}{}
	app.release <- struct{}{}
	for _, ch := range []<-chan envtest.Reply{first, second} {
		r := <-ch
		require.Equal(t, http.StatusNoContent, r.Status, r.Raw)
	}
	s.waitStatus(id, queueAlice, "COMPLETED")
	require.Equal(t, int32(2), app.peak.Load(), "never more than MaxInFlight inside the app")
}

// Replays that hold every slot make a direct request wait QueueTimeout,
// then refuse it with 429, whether it is for the Handler or an operation.
func TestMaxInFlightReplaysHoldSlotsAgainstDirectRequests(t *testing.T) {
	t.Parallel()
	const wait = 300 * time.Millisecond
	app := newGateApp()
	s := app.start(t, 2, wait)

	ids := []string{s.submit("/gate", queueAlice, ""), s.submit("/held", queueAlice, "")}
	entered := []string{queueReceive(t, app.entered), queueReceive(t, app.entered)}
	require.ElementsMatch(t, ids, entered)

	for _, path := range []string{"/gate", "/held"} {
		start := time.Now()
		r := <-s.direct(http.MethodPost, path, queueAlice)
		require.Equal(t, http.StatusTooManyRequests, r.Status, "%s: %s", path, r.Raw)
		require.GreaterOrEqual(t, time.Since(start), wait, "%s was refused before QueueTimeout", path)
		require.Equal(t, "1", r.Header.Get("Retry-After"))
		require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
		require.True(t, strings.Contains(r.Raw, "in flight"), r.Raw)
	}
	receiveNone(t, app.entered, "a refused request reached the app")

	// A slot given back by a replay goes to the next direct request.
	app.release <- struct{}{}
	next := s.direct(http.MethodPost, "/gate", queueAlice)
	require.Empty(t, queueReceive(t, app.entered))
	app.release <- struct{}{}
	app.release <- struct{}{}
	require.Equal(t, http.StatusNoContent, (<-next).Status)
	for _, id := range ids {
		s.waitStatus(id, queueAlice, "COMPLETED")
	}
	require.Equal(t, int32(2), app.peak.Load(), "never more than MaxInFlight inside the app")
}
