package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
)

// The replay task: a stored request served by the environment's own
// handler, in process, as the caller who submitted it, and the response
// recorded.

// replay is the replay task's function: it serves the stored request with
// the environment's handler as the submitting caller and records the
// response.
func (q *Queue) replay(ctx context.Context, in Request) (Response, error) {
	ri, _ := tasks.RunInfoFromContext(ctx)
	log := tasks.Logger(ctx)
	deps, h := q.current()
	if h == nil || deps == nil {
		return Response{}, tasks.Permanent(fmt.Errorf("environment %s is not built in this process", q.env))
	}
	// The timer that enforces the start timeout lives in the process that
	// took the submit; after a restart this check is what remains.
	if in.StartTimeout > 0 && ri.Name != "" {
		if run, err := deps.Dispatcher.Get(ctx, ri.Name); err == nil {
			if dl := startDeadline(run, &in); time.Now().After(dl) {
				return Response{}, tasks.Permanent(fmt.Errorf("%w: started %s after its deadline",
					ErrStartTimeout, time.Since(dl).Round(time.Millisecond)))
			}
		}
	}
	if g := q.settings.Auth.RequiredGroup; g != "" && !ri.Caller.InGroup(g) {
		return Response{}, tasks.Permanent(fmt.Errorf("%w: not in group %s", ErrForbidden, g))
	}
	if isQueueRoute(in.Path) {
		return Response{}, tasks.Permanent(errors.New("the queue's own routes cannot be queued"))
	}
	// The slot is the one direct requests take too (QueueMount.Acquire); ctx
	// carries it to the app's handlers, which then take no other.
	ctx, release, err := q.acquire(ctx)
	if err != nil {
		return Response{}, err
	}
	defer release()
	req, err := q.request(ctx, ri, &in)
	if err != nil {
		return Response{}, tasks.Permanent(err)
	}
	rec := newQueueRecorder(q.cfg.MaxResponseBytes)
	start := time.Now()
	log.InfoContext(ctx, "replaying request", "method", in.Method, "path", in.Path)
	if err := serveRecovered(h, rec, req); err != nil {
		return Response{}, tasks.Permanent(err)
	}
	if err := ctx.Err(); err != nil {
		// Aborted or timed out: the dispatcher records why.
		return Response{}, context.Cause(ctx)
	}
	if rec.over {
		return Response{}, tasks.Permanent(fmt.Errorf("%w: over %d bytes", ErrResponseTooLarge, q.cfg.MaxResponseBytes))
	}
	out := rec.result()
	log.InfoContext(ctx, "replayed request", "status", out.StatusCode, "bytes", rec.body.Len(),
		"duration_ms", time.Since(start).Milliseconds())
	return out, nil
}

// isQueueRoute reports whether the escaped path p is one of the queue's
// own routes, which a queued request may not target.
func isQueueRoute(p string) bool {
	if u, err := url.PathUnescape(p); err == nil {
		p = u
	}
	p = path.Clean("/" + p)
	return p == "/queue/submit" || strings.HasPrefix(p, "/queue/submit/") || strings.HasPrefix(p, "/queue/requests/") ||
		p == falRoot || strings.HasPrefix(p, falRoot+"/")
}

// serveRecovered serves req, turning a panic of the handler into an error.
func serveRecovered(h http.Handler, w http.ResponseWriter, req *http.Request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	h.ServeHTTP(w, req)
	return nil
}

// request rebuilds the stored request as the run's caller.
func (q *Queue) request(ctx context.Context, ri tasks.RunInfo, in *Request) (*http.Request, error) {
	u, err := url.Parse(in.Path)
	if err != nil || u.Path == "" || u.Path[0] != '/' || u.RawQuery != "" {
		return nil, fmt.Errorf("stored path %q is not a path", in.Path)
	}
	u.RawQuery = in.RawQuery
	ctx = middleware.WithIdentity(ctx, ri.Caller)
	if c, ok := q.takeCredentials(in.CredentialsRef, ri.Caller.Subject); ok {
		ctx = middleware.WithCredentials(ctx, c)
	}
	if ip, err := netip.ParseAddr(in.ClientIP); err == nil {
		// The same value chi's ClientIPFrom* middleware would have set.
		ctx = clientIPContext(ctx, ip)
	}
	body := getBody(in.Body, in.BodyBase64)
	req, err := http.NewRequestWithContext(ctx, in.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("stored request: %w", err)
	}
	req.RequestURI = u.RequestURI()
	req.Host = in.Host
	for k, vs := range in.Header {
		// Filtered again: a replay run submitted some other way than
		// POST /queue/submit must not smuggle in what submit drops.
		if !queueHeaderAllowed(k, "") {
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set(queueRequestIDHeader, ri.Name)
	if in.ClientIP != "" {
		req.RemoteAddr = remoteAddr(in.ClientIP)
	}
	return req, nil
}

// queueRequestIDHeader tells a replayed handler which queued request it
// serves (fal's x-fal-request-id).
const queueRequestIDHeader = "X-Queue-Request-Id"

// remoteAddr is ip as http.Request.RemoteAddr spells a peer: "ip:port".
func remoteAddr(ip string) string {
	if a, err := netip.ParseAddr(ip); err == nil {
		return netip.AddrPortFrom(a, 0).String()
	}
	return ip
}

// clientIPContext stores ip where chimw.GetClientIP finds it, by running
// chi's own middleware over a request that carries it.
func clientIPContext(ctx context.Context, ip netip.Addr) context.Context {
	r := (&http.Request{RemoteAddr: netip.AddrPortFrom(ip, 0).String()}).WithContext(ctx)
	chimw.ClientIPFromRemoteAddr(http.HandlerFunc(func(_ http.ResponseWriter, rr *http.Request) {
		ctx = rr.Context()
	})).ServeHTTP(nil, r)
	return ctx
}

// queueRecorder records a response, holding at most max body bytes.
type queueRecorder struct {
	header http.Header
	sent   http.Header // header as it was when the status was written
	status int
	body   bytes.Buffer
	max    int64
	over   bool
}

func newQueueRecorder(max int64) *queueRecorder {
	return &queueRecorder{header: http.Header{}, max: max}
}

func (r *queueRecorder) Header() http.Header { return r.header }

func (r *queueRecorder) WriteHeader(code int) {
	if r.status != 0 || code < 200 {
		return // already written, or informational (103 Early Hints)
	}
	r.status = code
	r.sent = r.header.Clone()
}

func (r *queueRecorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	if r.over || int64(r.body.Len())+int64(len(p)) > r.max {
		r.over = true
		return 0, ErrResponseTooLarge
	}
	return r.body.Write(p)
}

// ReadFrom keeps io.Copy from bypassing the bound.
func (r *queueRecorder) ReadFrom(src io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{r}, src)
}

// Flush is a no-op: the response is kept until the handler returns.
func (r *queueRecorder) Flush() {}

// result is the recorded response, without the headers that describe one
// connection (hop-by-hop, Content-Length) or set state in a browser that
// fetches the result later (Set-Cookie).
func (r *queueRecorder) result() Response {
	r.WriteHeader(http.StatusOK)
	out := Response{StatusCode: r.status, Header: map[string][]string{}}
	for k, vs := range r.sent {
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Keep-Alive", "Transfer-Encoding", "Trailer", "Upgrade",
			"Proxy-Connection", "Content-Length", "Set-Cookie":
			continue
		}
		out.Header[k] = vs
	}
	setBody(r.body.Bytes(), &out.Body, &out.BodyBase64)
	return out
}

// queueHeaderAllowed says which request headers a queued request keeps:
// content negotiation and custom X- headers, never credentials, cookies,
// proxy headers or the queue's own. credHeader is the custom header that
// carried this request's credential, if any.
func queueHeaderAllowed(name, credHeader string) bool {
	k := http.CanonicalHeaderKey(name)
	switch k {
	case "Content-Type", "Accept", "Accept-Language":
		return true
	}
	if credHeader != "" && strings.EqualFold(k, credHeader) {
		return false
	}
	lower := strings.ToLower(k)
	if !strings.HasPrefix(lower, "x-") ||
		strings.HasPrefix(lower, "x-forwarded-") || lower == "x-real-ip" || strings.HasPrefix(lower, "x-queue-") || strings.HasPrefix(lower, "x-fal-") {
		return false
	}
	for _, bad := range []string{"auth", "token", "cookie", "secret", "key", "session", "passw", "credential", "signature", "csrf", "xsrf"} {
		if strings.Contains(lower, bad) {
			return false
		}
	}
	return true
}
