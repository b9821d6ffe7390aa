package client_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/tasks"
)

// faultyTransport is the network between the client and the server: it
// loses the answer of the first submit (the server acted on it), then
// counts the dials that the stopped server refused.
type faultyTransport struct {
	next      http.RoundTripper
	onLost    func()
	lost      atomic.Bool
	refused   atomic.Int32
	lostBody  atomic.Value // the lost answer
	submitted atomic.Int32 // submits that reached the network
}

func (f *faultyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	isSubmit := req.Method == http.MethodPost && strings.HasPrefix(req.URL.Path, "/run-task/")
	if isSubmit {
		f.submitted.Add(1)
	}
	resp, err := f.next.RoundTrip(req)
	if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
		f.refused.Add(1)
	}
	if err != nil || !isSubmit || f.lost.Swap(true) {
		return resp, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	f.lostBody.Store(string(b))
	f.onLost()
	return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
}

// TestSubmitRetriesThroughARestart: the server takes a submit but its
// answer is lost; the server stops, and the client keeps retrying while
// it is down (connections refused) until a new server on the same address
// and data answers. The Idempotency-Key makes that retry return the run
// the first server created: there is exactly one.
func TestSubmitRetriesThroughARestart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dataDir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	first := serveOn(t, ln, dataDir)

	restarted := make(chan struct{})
	tr := &faultyTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
	tr.onLost = func() {
		first.stop(t)
		go func() {
			defer close(restarted)
			// Down until the client has been refused twice.
			for tr.refused.Load() < 2 {
				time.Sleep(5 * time.Millisecond)
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Errorf("listening again on %s: %v", addr, err)
				return
			}
			serveOn(t, ln, dataDir)
		}()
	}
	c, err := client.New("http://"+addr, &client.Options{
		Credentials: client.BearerToken(aliceToken),
		HTTPClient:  &http.Client{Transport: tr},
		Retry:       client.RetryPolicy{MaxAttempts: 50, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
	})
	require.NoError(t, err)

	sub, err := client.Start(ctx, c, demo.Echo, demo.EchoInput{Message: "exactly once"}, nil)
	require.NoError(t, err)
	<-restarted
	require.GreaterOrEqual(t, tr.refused.Load(), int32(2), "the client retried while the server was down")
	require.GreaterOrEqual(t, tr.submitted.Load(), int32(2))
	require.Contains(t, tr.lostBody.Load(), `"name":"`+sub.Name+`"`, "the retry returned the run of the lost answer")

	var names []string
	for r, err := range c.List(ctx, nil) {
		require.NoError(t, err)
		names = append(names, r.Name)
	}
	require.Equal(t, []string{sub.Name}, names, "one run, whatever the retries")
	out, err := client.Outputs[demo.EchoOutput](ctx, c, sub.Name)
	if err != nil { // the first server may have stopped before it ran
		_, err = c.Wait(ctx, sub.Name, nil)
		require.NoError(t, err)
		out, err = client.Outputs[demo.EchoOutput](ctx, c, sub.Name)
	}
	require.NoError(t, err)
	require.Equal(t, "exactly once", out.Message)
}

// statusRecorder counts the answers by status.
type statusRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen map[int]int
	hdr  []string // Retry-After of each 429
}

func (s *statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(req)
	if err == nil {
		s.mu.Lock()
		if s.seen == nil {
			s.seen = map[int]int{}
		}
		s.seen[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests {
			s.hdr = append(s.hdr, resp.Header.Get("Retry-After"))
		}
		s.mu.Unlock()
	}
	return resp, err
}

// A rate-limited caller is told to come back later (429, Retry-After);
// the client waits as told and gets its answer.
func TestRateLimitedCallsAreRetriedAfterRetryAfter(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	env := demo.Webhook()
	env.Settings().Limits = environments.Limits{RateLimit: 2, RateWindow: time.Second}
	rec := &statusRecorder{next: http.DefaultTransport}
	c, err := client.New(serve(t, env), &client.Options{
		Credentials: client.BearerToken(aliceToken), HTTPClient: &http.Client{Transport: rec},
		Retry: client.RetryPolicy{MaxAttempts: 10},
	})
	require.NoError(t, err)

	for range 4 {
		_, err := c.Me(ctx)
		require.NoError(t, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Positive(t, rec.seen[http.StatusTooManyRequests], "%v", rec.seen)
	require.Equal(t, 4, rec.seen[http.StatusOK])
	require.Equal(t, "1", rec.hdr[0])

	// With no retries, the 429 comes back as an *Error with RetryAfter.
	once, err := client.New(c.BaseURL(), &client.Options{Credentials: client.BearerToken(aliceToken), Retry: client.RetryPolicy{MaxAttempts: 1}})
	require.NoError(t, err)
	var apiErr *client.Error
	for apiErr == nil {
		_, err := once.Me(ctx)
		errors.As(err, &apiErr)
	}
	require.Equal(t, http.StatusTooManyRequests, apiErr.Status)
	require.Equal(t, time.Second, apiErr.RetryAfter)
}

// A call that changes state without an idempotency key (abort) is not
// sent again after a network error once it may have reached the server.
func TestAbortIsNotRetriedAfterALostAnswer(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	base := serve(t)
	c := newClient(t, base, aliceToken)
	sub, err := client.Start(ctx, c, demo.Sleep, demo.SleepInput{Seconds: 600}, nil)
	require.NoError(t, err)

	var sent atomic.Int32
	lossy, err := client.New(base, &client.Options{
		Credentials: client.BearerToken(aliceToken),
		Retry:       client.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond},
		HTTPClient: &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
			sent.Add(1)
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
		})},
	})
	require.NoError(t, err)
	require.ErrorIs(t, lossy.Abort(ctx, sub.Name, "lost"), syscall.ECONNRESET)
	require.Equal(t, int32(1), sent.Load())
	st, err := c.Wait(ctx, sub.Name, nil)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseAborted, st.Phase, "the one abort acted")

	// A read is idempotent: retried up to MaxAttempts.
	sent.Store(0)
	_, err = lossy.Get(ctx, sub.Name)
	require.Error(t, err)
	require.Equal(t, int32(6), sent.Load())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRetryAfterAndBackoff(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]struct {
		value string
		want  time.Duration
		ok    bool
	}{
		"seconds":   {"3", 3 * time.Second, true},
		"zero":      {"0", 0, true},
		"http date": {now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		"past date": {now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		"absent":    {"", 0, false},
		"garbage":   {"soon", 0, false},
		"negative":  {"-1", 0, false},
	}
	for name, tc := range cases {
		got, ok := client.ParseRetryAfter(tc.value, now)
		require.Equal(t, tc.ok, ok, name)
		require.Equal(t, tc.want, got, name)
	}

	p := client.RetryPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	for n, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for range 50 {
			d := client.BackoffOf(p, n)
			require.GreaterOrEqual(t, d, ceiling/2, "attempt %d", n)
			require.LessOrEqual(t, d, ceiling, "attempt %d", n)
		}
	}
}

func TestErrorFromAnyBody(t *testing.T) {
	t.Parallel()
	problem := client.ErrorFrom(http.StatusUnprocessableEntity,
		http.Header{"Content-Type": {"application/problem+json"}, "X-Request-Id": {"srv-1"}},
		[]byte(`{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected string","location":"body.message","value":5}]}`),
		"sent-1")
	require.Equal(t, &client.Error{
		Status: 422, Title: "Unprocessable Entity", Detail: "validation failed", RequestID: "srv-1",
		Errors: []client.FieldError{{Message: "expected string", Location: "body.message", Value: float64(5)}},
	}, problem)
	require.Equal(t, "422 Unprocessable Entity: validation failed (body.message: expected string)", problem.Error())

	text := client.ErrorFrom(http.StatusBadGateway, http.Header{"Content-Type": {"text/html"}, "Retry-After": {"2"}},
		[]byte("<html>bad gateway</html>\n"), "sent-2")
	require.Equal(t, &client.Error{Status: 502, Title: "Bad Gateway", Detail: "<html>bad gateway</html>", RequestID: "sent-2", RetryAfter: 2 * time.Second}, text)

	long := client.ErrorFrom(http.StatusInternalServerError, http.Header{}, []byte(strings.Repeat("x", 2000)), "")
	require.Len(t, long.Detail, 512+len("…"))
}
