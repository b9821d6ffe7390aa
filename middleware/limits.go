package middleware

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"

	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/middleware/report"
)

// ConcurrencyLimit lets at most n requests through at once: Modal's
// max_inputs for one environment. A request beyond n waits for a free slot
// for up to queueTimeout (zero: it does not wait), then gets 429 with a
// Retry-After of queueTimeout (at least one second). Waiters are served
// roughly first come, first served. A waiter whose client goes away leaves
// the queue without a response.
//
// It is NewLimiter(n, queueTimeout).Middleware(); use a Limiter directly
// when work outside this middleware must share the same n slots.
//
// It panics when n < 1 or queueTimeout < 0.
func ConcurrencyLimit(n int, queueTimeout time.Duration) func(http.Handler) http.Handler {
	return newLimiter("middleware.ConcurrencyLimit", n, queueTimeout).Middleware()
}

// Limiter is a semaphore of n slots with a FIFO queue of waiters: Modal's
// max_inputs, shared by the requests that arrive over HTTP (Middleware)
// and by work that runs in process (Acquire), such as a queued request
// replayed later, so that the two together never exceed n. It is safe for
// concurrent use; create it with NewLimiter.
type Limiter struct {
	// A buffered channel is the semaphore: blocked senders queue in FIFO
	// order inside the runtime, which gives the fairness for free.
	slots        chan struct{}
	queueTimeout time.Duration
	refused      string // detail of the 429
}

// NewLimiter returns a Limiter of n slots whose Middleware lets a request
// wait up to queueTimeout for one (zero: it does not wait).
//
// It panics when n < 1 or queueTimeout < 0.
func NewLimiter(n int, queueTimeout time.Duration) *Limiter {
	return newLimiter("middleware.NewLimiter", n, queueTimeout)
}

// newLimiter is NewLimiter with the name of the exported function the
// caller used, for its panics.
func newLimiter(fn string, n int, queueTimeout time.Duration) *Limiter {
	if n < 1 {
		panic(fmt.Sprintf("%s: n (max in flight) must be at least 1, got %d", fn, n))
	}
	if queueTimeout < 0 {
		panic(fmt.Sprintf("%s: queueTimeout must not be negative, got %v", fn, queueTimeout))
	}
	return &Limiter{
		slots:        make(chan struct{}, n),
		queueTimeout: queueTimeout,
		refused:      fmt.Sprintf("more than %d requests in flight; retry later", n),
	}
}

// Limit returns n, the number of slots.
func (l *Limiter) Limit() int { return cap(l.slots) }

// Middleware serves a request in a slot of l. A request that finds none
// free waits up to the queue timeout, then gets 429 problem+json with a
// Retry-After of the queue timeout (at least one second). A waiter whose
// client goes away leaves the queue without a response, and a request
// whose client left while it waited gives its slot straight back.
func (l *Limiter) Middleware() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case l.slots <- struct{}{}:
			default:
				if !l.wait(r) {
					if r.Context().Err() == nil {
						report.Refuse(r.Context(), report.MaxInFlight)
						problem.TooManyRequests(w, r, l.queueTimeout, l.refused)
					}
					return
				}
			}
			// Released directly rather than through Acquire's release
			// func: this path runs on every request and allocates nothing.
			defer func() { <-l.slots }()
			if r.Context().Err() != nil {
				// The client left while it waited; the slot goes to the next.
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// wait waits up to the queue timeout for a slot; false when it passed or
// the client left.
func (l *Limiter) wait(r *http.Request) bool {
	if l.queueTimeout == 0 {
		return false
	}
	t := time.NewTimer(l.queueTimeout)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-r.Context().Done():
		return false
	}
}

// Acquire takes a slot, waiting in the same queue as the requests of
// Middleware for as long as ctx allows: no queue timeout applies, since an
// in-process caller has nowhere to be refused to. It returns the slot's
// release func, which frees the slot once however often it is called, or
// the cause of ctx (context.Cause) when ctx is done before a slot is free;
// a ctx already done takes no slot.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	select {
	case l.slots <- struct{}{}:
		return l.releaser(), nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// TryAcquire takes a slot if one is free at once, returning its release
// func (as Acquire's) and true; otherwise it returns nil and false.
func (l *Limiter) TryAcquire() (release func(), ok bool) {
	select {
	case l.slots <- struct{}{}:
		return l.releaser(), true
	default:
		return nil, false
	}
}

// releaser returns the release func of a slot just taken.
func (l *Limiter) releaser() func() {
	var once sync.Once
	return func() { once.Do(func() { <-l.slots }) }
}

// RateLimitByIdentity allows limit requests per window to each caller,
// counted with httprate's sliding window. The caller is the verified
// Identity's Subject when authentication ran before it, else the client IP
// (chi's ClientIPFrom* result when installed upstream, else the peer
// address; IPv6 clients are grouped by /64). Every response carries
// X-RateLimit-Limit, -Remaining and -Reset; a refused request gets 429
// problem+json with Retry-After.
//
// The counters live in this process: with several replicas each one counts
// on its own.
//
// It panics when limit < 1 or window <= 0.
func RateLimitByIdentity(limit int, window time.Duration) func(http.Handler) http.Handler {
	if limit < 1 {
		panic(fmt.Sprintf("middleware.RateLimitByIdentity: limit must be at least 1, got %d", limit))
	}
	if window <= 0 {
		panic(fmt.Sprintf("middleware.RateLimitByIdentity: window must be positive, got %v", window))
	}
	detail := fmt.Sprintf("more than %d requests per %v", limit, window)
	return httprate.LimitBy(limit, window, RateLimitKey,
		httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
			// httprate already set Retry-After to the window; problem
			// writes the same figure with the problem+json body.
			report.Refuse(r.Context(), report.RateLimit)
			problem.TooManyRequests(w, r, window, detail)
		}),
		httprate.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, _ error) {
			// The in-process counter never fails; a custom one might, and
			// then refusing is safer than letting everything through.
			problem.Write(w, r, http.StatusServiceUnavailable, "rate limiter unavailable")
		}),
	)
}

// RateLimitKey is the httprate key RateLimitByIdentity counts by:
// "sub:<subject>" for a verified caller, "ip:<address>" otherwise. The
// prefixes keep a subject that looks like an address from sharing a bucket
// with that address.
func RateLimitKey(r *http.Request) (string, error) {
	if id, ok := IdentityFromContext(r.Context()); ok && id.Subject != "" {
		return "sub:" + id.Subject, nil
	}
	ip := chimw.GetClientIP(r.Context())
	if ip == "" {
		ip = r.RemoteAddr
		if host, _, err := net.SplitHostPort(ip); err == nil {
			ip = host
		}
	}
	return "ip:" + httprate.CanonicalizeIP(ip), nil
}

// BodyLimit caps request bodies at n bytes without ever holding a body in
// memory: a declared Content-Length over n is refused before the handler
// runs, and a body that grows past n while the handler streams it makes
// the read fail with *http.MaxBytesError. In both cases the client gets 413
// problem+json, unless the handler already started its response; the
// connection is then closed so the rest of the upload is not read.
//
// It panics when n < 1.
func BodyLimit(n int64) func(http.Handler) http.Handler {
	if n < 1 {
		panic(fmt.Sprintf("middleware.BodyLimit: n must be at least 1 byte, got %d", n))
	}
	detail := fmt.Sprintf("request body larger than %d bytes", n)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				// Tell net/http not to drain an upload we will not read.
				w.Header().Set("Connection", "close")
				problem.Write(w, r, http.StatusRequestEntityTooLarge, detail)
				return
			}
			if r.Body == nil || r.Body == http.NoBody {
				next.ServeHTTP(w, r)
				return
			}
			lw := &limitWriter{ResponseWriter: w, req: r, detail: detail}
			r.Body = &limitBody{ReadCloser: http.MaxBytesReader(w, r.Body, n), w: lw}
			next.ServeHTTP(lw, r)
			lw.finish()
		})
	}
}

// limitBody notes when its MaxBytesReader refused to read further, so the
// response can become 413 whatever status the handler chose for the error.
type limitBody struct {
	io.ReadCloser
	w *limitWriter
}

func (b *limitBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			b.w.exceeded()
		}
	}
	return n, err
}

// limitWriter turns the response into 413 problem+json once the body went
// over the limit, if the handler had not sent its status yet. Only the
// handler's goroutine writes: the body may be read on another one (a
// reverse proxy's transport), so Read merely records the overflow and the
// 413 goes out at the handler's next write or when it returns. It unwraps
// to the server's writer so http.ResponseController (flush, hijack,
// deadlines) keeps working through it.
type limitWriter struct {
	http.ResponseWriter
	req    *http.Request // whose Accept the 413 answers
	detail string

	mu       sync.Mutex
	status   bool // a final status went out, the handler's or ours
	tooLarge bool // the body went over the limit
	refused  bool // we answered 413; drop what the handler writes
}

func (lw *limitWriter) exceeded() {
	lw.mu.Lock()
	lw.tooLarge = true
	lw.mu.Unlock()
}

// claim reports whether the handler may write; when the body went over the
// limit before any status went out, it answers 413 instead and refuses.
func (lw *limitWriter) claim() bool {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.refused {
		return false
	}
	if lw.status {
		return true
	}
	lw.status = true
	if !lw.tooLarge {
		return true
	}
	lw.refused = true
	h := lw.ResponseWriter.Header()
	// The handler may have sized its own error body.
	h.Del("Content-Length")
	// MaxBytesReader cannot reach the server's writer through wrappers to
	// stop it reading the rest of the upload; closing the connection does.
	h.Set("Connection", "close")
	problem.Write(lw.ResponseWriter, lw.req, http.StatusRequestEntityTooLarge, lw.detail)
	return false
}

func (lw *limitWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		// Informational responses (100 Continue, 103 Early Hints) do not
		// fix the final status.
		lw.ResponseWriter.WriteHeader(code)
		return
	}
	if lw.claim() {
		lw.ResponseWriter.WriteHeader(code)
	}
}

func (lw *limitWriter) Write(p []byte) (int, error) {
	if !lw.claim() {
		return 0, http.ErrBodyNotAllowed
	}
	return lw.ResponseWriter.Write(p)
}

// ReadFrom keeps io.Copy's sendfile path for handlers that serve files.
func (lw *limitWriter) ReadFrom(src io.Reader) (int64, error) {
	if !lw.claim() {
		return 0, http.ErrBodyNotAllowed
	}
	if rf, ok := lw.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{lw.ResponseWriter}, src)
}

// Flush lets handlers that assert http.Flusher directly keep streaming.
func (lw *limitWriter) Flush() {
	if lw.claim() {
		_ = http.NewResponseController(lw.ResponseWriter).Flush()
	}
}

// Hijack lets WebSocket upgraders that assert http.Hijacker directly work.
func (lw *limitWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	lw.mu.Lock()
	lw.status = true
	lw.mu.Unlock()
	return http.NewResponseController(lw.ResponseWriter).Hijack()
}

// Unwrap gives http.ResponseController the server's writer.
func (lw *limitWriter) Unwrap() http.ResponseWriter { return lw.ResponseWriter }

// finish answers 413 for a handler that hit the limit and returned without
// writing anything.
func (lw *limitWriter) finish() { lw.claim() }

// writerOnly hides ReadFrom so io.Copy does not recurse into it.
type writerOnly struct{ io.Writer }

var (
	_ http.Flusher  = (*limitWriter)(nil)
	_ http.Hijacker = (*limitWriter)(nil)
	_ io.ReaderFrom = (*limitWriter)(nil)
)

// ExceptPaths applies mw to every request but those for paths, given as
// PassthroughConfig.Exclude entries (a clean absolute path, or one ending
// in "/*" for what is below it) and matched the same way: only the
// canonical spelling of a path bypasses mw. An environment uses it so that
// health checks and docs are not counted against its in-flight limit.
//
// It panics when an entry is not a clean absolute path.
func ExceptPaths(paths []string, mw func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	for _, e := range paths {
		if !validExclude(e) {
			panic(fmt.Sprintf("middleware.ExceptPaths: %q is not a clean absolute path, optionally ending in /*", e))
		}
	}
	set := newPathSet(paths)
	return func(next http.Handler) http.Handler {
		wrapped := mw(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if set.skip(r) {
				next.ServeHTTP(w, r)
				return
			}
			wrapped.ServeHTTP(w, r)
		})
	}
}
