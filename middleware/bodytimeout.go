package middleware

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/taskgate/taskgate/internal/problem"
)

// refusalLinger is how long a connection answered with an error before its
// body arrived may still read that body before it is closed: a client that
// sent its whole body (up to 256 KiB, net/http's cap) then gets a clean
// close instead of a reset, which some clients report in place of the
// answer; a client that trickles its body is cut off soon after.
const refusalLinger = 500 * time.Millisecond

// BodyTimeout bounds how long a request body may take to arrive, and lets
// an answer that does not need the body go without it.
//
// The body must arrive within d of the handler's start. A read past that
// fails, the client gets 408 problem+json (unless the response had begun)
// and the connection is closed. Handlers may shorten the deadline
// (http.ResponseController's SetReadDeadline, huma's BodyReadTimeout), not
// lengthen it. The deadline is the body's only: the response may take as
// long as it needs (net/http lifts the deadline once the body ended).
//
// An error answer (status 400 or more: 401, 403, 404, 413, 415, 429…) sent
// before the body was read to its end goes out at once with "Connection:
// close", and the connection is closed soon after. Without this, net/http
// reads up to 256 KiB of the unread body before it answers: as long as
// its ReadTimeout allows when the client trickles it.
//
// Put it first (outermost): it must see every answer. Requests without a
// body pass untouched. It panics when d <= 0.
func BodyTimeout(d time.Duration) func(http.Handler) http.Handler {
	if d <= 0 {
		panic(fmt.Sprintf("middleware.BodyTimeout: d must be positive, got %v", d))
	}
	detail := fmt.Sprintf("the request body did not arrive within %v", d)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Body == nil || r.Body == http.NoBody {
				next.ServeHTTP(w, r)
				return
			}
			rc := http.NewResponseController(w)
			deadline := time.Now().Add(d)
			if rc.SetReadDeadline(deadline) != nil {
				// A writer without deadlines (a test recorder) has
				// nothing to bound.
				next.ServeHTTP(w, r)
				return
			}
			body := &watchedBody{ReadCloser: r.Body}
			bw := &bodyTimeoutWriter{ResponseWriter: w, req: r, body: body, rc: rc, deadline: deadline, detail: detail}
			r.Body = body
			next.ServeHTTP(bw, r)
			bw.finish()
			if bw.closing && !body.expired.Load() {
				// net/http reads the rest of the body once the handler
				// returned, even on a connection it then closes.
				_ = rc.SetReadDeadline(time.Now().Add(refusalLinger))
			}
		})
	}
}

// watchedBody is a request body that records whether it was read to its
// end or failed past its deadline. Its reads may come from another
// goroutine than the handler's (a reverse proxy's transport).
type watchedBody struct {
	io.ReadCloser
	ended   atomic.Bool
	expired atomic.Bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.ended.Store(true)
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.expired.Store(true)
	}
	return n, err
}

// bodyTimeoutWriter sees the response's status go out. Only the handler's
// goroutine writes.
type bodyTimeoutWriter struct {
	http.ResponseWriter
	req      *http.Request // whose Accept the 408 answers
	body     *watchedBody
	rc       *http.ResponseController
	deadline time.Time
	detail   string

	status  bool // a final status went out, the handler's or ours
	refused bool // we answered 408; drop what the handler writes
	closing bool // an error answer went out before the body ended
}

// claim reports whether the handler may write a response of status code.
// When the body's deadline passed before any status went out it answers
// 408 instead and refuses.
func (w *bodyTimeoutWriter) claim(code int) bool {
	if w.refused {
		return false
	}
	if w.status {
		return true
	}
	w.status = true
	h := w.ResponseWriter.Header()
	if w.body.expired.Load() && code != http.StatusRequestTimeout {
		w.refused, w.closing = true, true
		h.Del("Content-Length") // the handler may have sized its own body
		h.Set("Connection", "close")
		problem.Write(w.ResponseWriter, w.req, http.StatusRequestTimeout, w.detail)
		return false
	}
	if code >= 400 && !w.body.ended.Load() {
		// Connection: close keeps net/http from reading the body before
		// it sends the answer.
		w.closing = true
		h.Set("Connection", "close")
	}
	return true
}

func (w *bodyTimeoutWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.claim(code) {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *bodyTimeoutWriter) Write(p []byte) (int, error) {
	if !w.claim(http.StatusOK) {
		return 0, http.ErrBodyNotAllowed
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps io.Copy's sendfile path for handlers that serve files.
func (w *bodyTimeoutWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.claim(http.StatusOK) {
		return 0, http.ErrBodyNotAllowed
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{w.ResponseWriter}, src)
}

// Flush lets handlers that assert http.Flusher directly keep streaming.
func (w *bodyTimeoutWriter) Flush() {
	if w.claim(http.StatusOK) {
		_ = w.rc.Flush()
	}
}

// Hijack lets WebSocket upgraders that assert http.Hijacker directly work.
func (w *bodyTimeoutWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.status = true
	return w.rc.Hijack()
}

// SetReadDeadline lets a handler shorten the body's deadline, never
// lengthen it, until the body ended. http.ResponseController and huma
// find it before Unwrap.
func (w *bodyTimeoutWriter) SetReadDeadline(t time.Time) error {
	if !w.body.ended.Load() && (t.IsZero() || t.After(w.deadline)) {
		t = w.deadline
	}
	return w.rc.SetReadDeadline(t)
}

// Unwrap gives http.ResponseController the server's writer.
func (w *bodyTimeoutWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish answers 408 for a handler that returned without writing anything
// after its body's deadline passed.
func (w *bodyTimeoutWriter) finish() {
	if !w.status && w.body.expired.Load() {
		w.claim(http.StatusOK)
	}
}

var (
	_ http.Flusher  = (*bodyTimeoutWriter)(nil)
	_ http.Hijacker = (*bodyTimeoutWriter)(nil)
	_ io.ReaderFrom = (*bodyTimeoutWriter)(nil)
)
