package middleware_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/middleware"
)

// blocker is a handler that holds every request until released, announcing
// each arrival on entered.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (b *blocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
	case <-r.Context().Done():
	}
	_, _ = io.WriteString(w, "done")
}

func (b *blocker) waitEntered(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-b.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("request never reached the handler")
		}
	}
}

type result struct {
	status int
	header http.Header
	body   string
	err    error
}

// get sends GET url in the background; the result arrives on the channel.
func get(ctx context.Context, url string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ch <- result{status: resp.StatusCode, header: resp.Header, body: string(b)}
	}()
	return ch
}

func requireProblem(t *testing.T, r result, status int) {
	t.Helper()
	noErr(t, r.err)
	equal(t, status, r.status, r.body)
	equal(t, problem.ContentType, r.header.Get("Content-Type"))
	var m struct {
		Status int    `json:"status"`
		Title  string `json:"title"`
	}
	noErr(t, json.Unmarshal([]byte(r.body), &m))
	equal(t, status, m.Status)
}

func TestConcurrencyLimitRefusesAfterQueueTimeout(t *testing.T) {
	t.Parallel()
	b := newBlocker()
	srv := httptest.NewServer(middleware.ConcurrencyLimit(2, 150*time.Millisecond)(b))
	defer srv.Close()
	defer close(b.release)

	first, second := get(t.Context(), srv.URL), get(t.Context(), srv.URL)
	b.waitEntered(t, 2)

	third := <-get(t.Context(), srv.URL)
	requireProblem(t, third, http.StatusTooManyRequests)
	equal(t, "1", third.header.Get("Retry-After"))
	if len(b.entered) != 0 {
		t.Fatal("the refused request reached the handler")
	}

	b.release <- struct{}{}
	b.release <- struct{}{}
	for _, ch := range []<-chan result{first, second} {
		r := <-ch
		noErr(t, r.err)
		equal(t, http.StatusOK, r.status)
	}
}

func TestConcurrencyLimitQueuedRequestGetsFreedSlot(t *testing.T) {
	t.Parallel()
	b := newBlocker()
	srv := httptest.NewServer(middleware.ConcurrencyLimit(1, time.Minute)(b))
	defer srv.Close()
	defer close(b.release)

	first := get(t.Context(), srv.URL)
	b.waitEntered(t, 1)
	queued := get(t.Context(), srv.URL)

	// The queued request must not reach the handler while the slot is taken.
	select {
	case <-b.entered:
		t.Fatal("second request ran beside the first with a limit of 1")
	case r := <-queued:
		t.Fatalf("queued request answered early: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}

	b.release <- struct{}{}
	equal(t, http.StatusOK, (<-first).status)
	b.waitEntered(t, 1)
	b.release <- struct{}{}
	r := <-queued
	noErr(t, r.err)
	equal(t, http.StatusOK, r.status)
}

func TestConcurrencyLimitZeroQueueTimeoutRefusesAtOnce(t *testing.T) {
	t.Parallel()
	b := newBlocker()
	srv := httptest.NewServer(middleware.ConcurrencyLimit(1, 0)(b))
	defer srv.Close()
	defer close(b.release)

	first := get(t.Context(), srv.URL)
	b.waitEntered(t, 1)
	requireProblem(t, <-get(t.Context(), srv.URL), http.StatusTooManyRequests)
	b.release <- struct{}{}
	equal(t, http.StatusOK, (<-first).status)
}

func TestConcurrencyLimitWaiterThatLeavesLeaksNoSlot(t *testing.T) {
	t.Parallel()
	b := newBlocker()
	srv := httptest.NewServer(middleware.ConcurrencyLimit(1, time.Minute)(b))
	defer srv.Close()

	first := get(t.Context(), srv.URL)
	b.waitEntered(t, 1)

	ctx, cancel := context.WithCancel(t.Context())
	waiter := get(ctx, srv.URL)
	time.Sleep(50 * time.Millisecond) // let it queue
	cancel()
	if err := (<-waiter).err; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter: %v, want context.Canceled", err)
	}

	// Closing release lets every current and future request through at
	// once, whether or not the server noticed the waiter leave before the
	// slot freed up. Either way the single slot must come back.
	close(b.release)
	equal(t, http.StatusOK, (<-first).status)
	for range 3 {
		r := <-get(t.Context(), srv.URL)
		noErr(t, r.err)
		equal(t, http.StatusOK, r.status)
	}
}

func TestLimitsPanicOnBadConfiguration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		build   func()
		setting string
	}{
		{"zero in flight", func() { middleware.ConcurrencyLimit(0, time.Second) }, "n (max in flight)"},
		{"negative queue timeout", func() { middleware.ConcurrencyLimit(1, -time.Second) }, "queueTimeout"},
		{"zero rate", func() { middleware.RateLimitByIdentity(0, time.Second) }, "limit"},
		{"zero window", func() { middleware.RateLimitByIdentity(1, 0) }, "window"},
		{"zero body", func() { middleware.BodyLimit(0) }, "n must be"},
		{"limiter: zero in flight", func() { middleware.NewLimiter(0, time.Second) }, "middleware.NewLimiter: n (max in flight)"},
		{"limiter: negative queue timeout", func() { middleware.NewLimiter(1, -time.Second) }, "middleware.NewLimiter: queueTimeout"},
		{"the wrapper names itself", func() { middleware.ConcurrencyLimit(0, time.Second) }, "middleware.ConcurrencyLimit: n"},
		{"unclean excepted path", func() { middleware.ExceptPaths([]string{"/a/../b"}, middleware.BodyLimit(1)) }, "middleware.ExceptPaths"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				msg := fmt.Sprint(recover())
				if !strings.Contains(msg, tt.setting) {
					t.Errorf("panic %q does not name %q", msg, tt.setting)
				}
			}()
			tt.build()
		})
	}
}

// asSubject plays the authenticator: the X-Test-Subject header becomes the
// verified identity.
func asSubject(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := r.Header.Get("X-Test-Subject"); s != "" {
			r = r.WithContext(middleware.WithIdentity(r.Context(), middleware.Identity{Subject: s}))
		}
		next.ServeHTTP(w, r)
	})
}

func TestRateLimitByIdentity(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := httptest.NewServer(asSubject(middleware.RateLimitByIdentity(3, time.Hour)(ok)))
	defer srv.Close()

	send := func(subject string) result {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
		if subject != "" {
			req.Header.Set("X-Test-Subject", subject)
		}
		resp, err := http.DefaultClient.Do(req)
		noErr(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return result{status: resp.StatusCode, header: resp.Header, body: string(b)}
	}

	for i := range 3 {
		r := send("alice")
		equal(t, http.StatusOK, r.status)
		equal(t, "3", r.header.Get("X-RateLimit-Limit"))
		equal(t, strconv.Itoa(2-i), r.header.Get("X-RateLimit-Remaining"))
		if r.header.Get("X-RateLimit-Reset") == "" {
			t.Error("no X-RateLimit-Reset")
		}
	}
	refused := send("alice")
	requireProblem(t, refused, http.StatusTooManyRequests)
	equal(t, "3600", refused.header.Get("Retry-After"))
	equal(t, "3", refused.header.Get("X-RateLimit-Limit"))
	equal(t, "0", refused.header.Get("X-RateLimit-Remaining"))

	// Another caller has a bucket of its own, and so has an anonymous one
	// (keyed by address), even though all of them share 127.0.0.1.
	equal(t, http.StatusOK, send("bob").status)
	for range 3 {
		equal(t, http.StatusOK, send("").status)
	}
	requireProblem(t, send(""), http.StatusTooManyRequests)
	equal(t, http.StatusOK, send("carol").status)
}

func TestRateLimitKey(t *testing.T) {
	t.Parallel()
	// resolveIP runs chi's client IP resolver the way an App installs it.
	resolveIP := func(r *http.Request) *http.Request {
		var out *http.Request
		chimw.ClientIPFromHeader("X-Real-IP")(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			out = r
		})).ServeHTTP(httptest.NewRecorder(), r)
		return out
	}
	tests := []struct {
		name       string
		remoteAddr string
		subject    string
		realIP     string
		prepare    func(*http.Request) *http.Request
		want       string
	}{
		{name: "subject wins over address", remoteAddr: "192.0.2.1:1234", subject: "alice", want: "sub:alice"},
		{name: "subject that looks like an address", remoteAddr: "192.0.2.1:1234", subject: "192.0.2.1", want: "sub:192.0.2.1"},
		{name: "peer IPv4", remoteAddr: "192.0.2.1:1234", want: "ip:192.0.2.1"},
		{name: "peer IPv6 grouped by /64", remoteAddr: "[2001:db8:1:2:3:4:5:6]:443", want: "ip:2001:db8:1:2::"},
		{name: "resolved client IP", remoteAddr: "10.0.0.1:1234", realIP: "198.51.100.7", prepare: resolveIP, want: "ip:198.51.100.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remoteAddr
			if tt.realIP != "" {
				r.Header.Set("X-Real-IP", tt.realIP)
			}
			if tt.subject != "" {
				r = r.WithContext(middleware.WithIdentity(r.Context(), middleware.Identity{Subject: tt.subject}))
			}
			if tt.prepare != nil {
				r = tt.prepare(r)
			}
			got, err := middleware.RateLimitKey(r)
			noErr(t, err)
			equal(t, tt.want, got)
		})
	}
}

// zeros is an endless source of zero bytes that costs no memory.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// chunked hides the length of r so the client sends it chunked.
type chunked struct{ io.Reader }

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	const limit = 1000
	// Handlers of each kind a user may write.
	reportError := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		_, _ = fmt.Fprint(w, n)
	})
	ignoreError := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	})
	answerFirst := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		http.NewResponseController(w).Flush()
		_, _ = io.Copy(io.Discard, r.Body)
	})
	var seen sync.Map // handler name -> bytes it managed to read
	counting := func(name string, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cr := &countReader{r: r.Body}
			r.Body = io.NopCloser(cr)
			h.ServeHTTP(w, r)
			seen.Store(name, cr.n)
		})
	}

	tests := []struct {
		name    string
		handler http.Handler
		body    io.Reader
		length  int64 // declared Content-Length; -1 sends it chunked
		status  int
		problem bool
	}{
		{"under the limit", reportError, strings.NewReader(strings.Repeat("x", limit)), limit, http.StatusOK, false},
		{"declared length over the limit", reportError, strings.NewReader(strings.Repeat("x", limit+1)), limit + 1, http.StatusRequestEntityTooLarge, true},
		{"chunked over the limit, handler reports 400", reportError, io.LimitReader(zeros{}, 5*limit), -1, http.StatusRequestEntityTooLarge, true},
		{"chunked over the limit, handler ignores the error", ignoreError, io.LimitReader(zeros{}, 5*limit), -1, http.StatusRequestEntityTooLarge, true},
		{"status already sent", answerFirst, io.LimitReader(zeros{}, 5*limit), -1, http.StatusAccepted, false},
		{"chunked under the limit", reportError, io.LimitReader(zeros{}, limit), -1, http.StatusOK, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(middleware.BodyLimit(limit)(counting(tt.name, tt.handler)))
			defer srv.Close()
			body := tt.body
			if tt.length < 0 {
				body = chunked{body}
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, body)
			noErr(t, err)
			req.ContentLength = max(tt.length, 0)
			resp, err := http.DefaultClient.Do(req)
			noErr(t, err)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			r := result{status: resp.StatusCode, header: resp.Header, body: string(b)}
			if tt.problem {
				requireProblem(t, r, tt.status)
			} else {
				equal(t, tt.status, r.status, r.body)
			}
			if n, ok := seen.Load(tt.name); ok {
				if n.(int64) > limit {
					t.Errorf("the handler read %d bytes, past the limit", n)
				}
			}
		})
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestBodyLimitKeepsStreamingAndHijacking(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hijack" {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Errorf("hijack through BodyLimit: %v", err)
				return
			}
			defer conn.Close()
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
			_ = buf.Flush()
			return
		}
		for i := range 3 {
			_, _ = fmt.Fprintf(w, "line %d\n", i)
			w.(http.Flusher).Flush()
		}
	})
	srv := httptest.NewServer(middleware.BodyLimit(10)(h))
	defer srv.Close()

	for _, path := range []string{"/hijack", "/stream"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+path, strings.NewReader("tiny"))
		resp, err := http.DefaultClient.Do(req)
		noErr(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		noErr(t, err)
		equal(t, http.StatusOK, resp.StatusCode)
		if path == "/hijack" {
			equal(t, "hijacked", string(b))
		} else {
			equal(t, "line 0\nline 1\nline 2\n", string(b))
		}
	}
}

// TestBodyLimitStreamsGigabyte uploads 1 GiB through BodyLimit to a handler
// that discards it, and checks that the process's peak RSS grew by less
// than 100 MiB: nothing buffers the body.
func TestBodyLimitStreamsGigabyte(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB upload: skipped in -short")
	}
	const size = 1 << 30
	var got int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = n
	})
	srv := httptest.NewServer(middleware.BodyLimit(2 << 30)(h))
	defer srv.Close()

	runtime.GC()
	before := resetPeakRSS(t)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL, io.LimitReader(zeros{}, size))
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	noErr(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	equal(t, http.StatusOK, resp.StatusCode)
	equal(t, int64(size), got)
	grew := peakRSS(t) - before
	t.Logf("peak RSS grew by %.1f MiB for a 1 GiB upload", float64(grew)/(1<<20))
	if grew >= 100<<20 {
		t.Errorf("peak RSS grew by %d bytes (>= 100 MiB)", grew)
	}
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux's
// clear_refs "5"), so that what an earlier test allocated does not hide
// this one's peak. It returns the peak to measure from.
func resetPeakRSS(t *testing.T) int64 {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak RSS (%v); measuring from the lifetime peak", err)
	}
	return peakRSS(t)
}

// peakRSS reads VmHWM, the process's peak resident set, in bytes.
func peakRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no /proc/self/status on this system")
	}
	noErr(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			noErr(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equal[T comparable](t *testing.T, want, got T, msg ...any) {
	t.Helper()
	if want != got {
		t.Fatalf("got %v, want %v %s", got, want, fmt.Sprint(msg...))
	}
}

// BenchmarkLimits measures what each limit adds to a request, against the
// bare handler in the same run: ns/op is the limited handler, bare_ns/op
// the handler alone, overhead_ns/op the difference. Bare and limited
// requests alternate in blocks, so that the load of a shared machine hits
// both alike. The handlers run in-process with a reused request and a
// minimal ResponseWriter: the figures are the middleware's own cost.
func BenchmarkLimits(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
	cases := []struct {
		name string
		h    http.Handler
	}{
		{"concurrency", middleware.ConcurrencyLimit(1<<20, time.Second)(ok)},
		{"rate", middleware.RateLimitByIdentity(1<<30, time.Hour)(ok)},
		{"body", middleware.BodyLimit(1 << 20)(ok)},
		{"all", middleware.RateLimitByIdentity(1<<30, time.Hour)(
			middleware.ConcurrencyLimit(1<<20, time.Second)(middleware.BodyLimit(1 << 20)(ok)))},
	}
	const block = 512
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			body := strings.NewReader(strings.Repeat("x", 512))
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			req = req.WithContext(middleware.WithIdentity(req.Context(), middleware.Identity{Subject: "alice"}))
			w := &nopWriter{h: http.Header{}}
			serve := func(h http.Handler, n int) time.Duration {
				start := time.Now()
				for range n {
					body.Seek(0, io.SeekStart)
					req.Body = io.NopCloser(body)
					req.ContentLength = body.Size()
					clear(w.h)
					h.ServeHTTP(w, req)
				}
				return time.Since(start)
			}
			var bare, limited time.Duration
			b.ReportAllocs()
			for done := 0; done < b.N; done += block {
				n := min(block, b.N-done)
				bare += serve(ok, n)
				limited += serve(c.h, n)
			}
			if w.code != http.StatusNoContent {
				b.Fatalf("status %d", w.code)
			}
			b.ReportMetric(float64(limited.Nanoseconds())/float64(b.N), "ns/op")
			b.ReportMetric(float64(bare.Nanoseconds())/float64(b.N), "bare_ns/op")
			b.ReportMetric(float64((limited-bare).Nanoseconds())/float64(b.N), "overhead_ns/op")
		})
	}
}

// nopWriter is the cheapest ResponseWriter: it keeps the status only.
type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(code int)        { w.code = code }

// TestExceptPaths: only the canonical spelling of an excepted path skips
// the middleware, as with Passthrough's exclusions.
func TestExceptPaths(t *testing.T) {
	t.Parallel()
	var wrapped int
	mark := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			wrapped++
			next.ServeHTTP(w, r)
		})
	}
	h := middleware.ExceptPaths([]string{"/health", "/docs/assets/*"}, mark)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for path, skipped := range map[string]bool{
		"/health":             true,
		"/docs/assets/ui.js":  true,
		"/docs/assets":        false,
		"/health/x":           false,
		"/%68ealth":           false,
		"/x/../health":        false,
		"/run-task/demo/echo": false,
	} {
		wrapped = 0
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "http://x"+path, nil))
		if got := wrapped == 0; got != skipped {
			t.Errorf("%s: skipped %v, want %v", path, got, skipped)
		}
	}
}
