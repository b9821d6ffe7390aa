//go:build soak

package soak

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/taskgate/taskgate/middleware"
)

// callback is one verified delivery the receiver took.
type callback struct {
	id    string // webhook-id
	typ   string // run.started, run.completed
	run   string // data.name
	phase string // data.phase
	at    time.Time
}

// receiver is the loopback endpoint that runs' callbacks are sent to. Each
// submit with a callback gets its own path, /cb/<sub>, so a delivery is
// matched to the submit that asked for it before its run name is known.
type receiver struct {
	srv *httptest.Server

	connMu sync.Mutex
	conns  map[net.Conn]http.ConnState

	mu       sync.Mutex
	last     time.Time // of the last request, whatever it was
	bySub    map[string][]callback
	seen     map[string]bool // webhook-ids: delivery is at least once
	dups     int
	stray    int // deliveries to a path no valid submit asked for
	refused  int // signatures VerifyWebhook refused
	bodyErrs int
}

func newReceiver(secret string) *receiver {
	r := &receiver{bySub: map[string][]callback{}, seen: map[string]bool{}, conns: map[net.Conn]http.ConnState{}}
	verified := middleware.VerifyWebhookWith(&middleware.WebhookOpts{Logger: discardLogger()}, secret)(http.HandlerFunc(r.take))
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.last = time.Now()
		r.mu.Unlock()
		rec := &statusRecorder{ResponseWriter: w}
		verified.ServeHTTP(rec, req)
		if rec.code == http.StatusUnauthorized {
			r.mu.Lock()
			r.refused++
			r.mu.Unlock()
		}
	}))
	r.srv.Config.ConnState = r.track
	r.srv.Start()
	return r
}

func (r *receiver) track(c net.Conn, st http.ConnState) {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	if st == http.StateClosed || st == http.StateHijacked {
		delete(r.conns, c)
		return
	}
	r.conns[c] = st
}

// open counts the connections to the receiver.
func (r *receiver) open() int {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	return len(r.conns)
}

// closeIdle closes the connections no delivery is using: idle ones, and
// new ones that never carried a request (Go's transport keeps a connection
// it dialed for a request that another connection served). httptest's
// CloseClientConnections would cut those in use too.
func (r *receiver) closeIdle() {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	for c, st := range r.conns {
		if st == http.StateIdle || st == http.StateNew {
			c.Close()
		}
	}
}

// url is where the callbacks of submit sub go.
func (r *receiver) url(sub string) string { return r.srv.URL + "/cb/" + sub }

func (r *receiver) take(w http.ResponseWriter, req *http.Request) {
	var p struct {
		Type string `json:"type"`
		Data struct {
			Name  string `json:"name"`
			Phase string `json:"phase"`
		} `json:"data"`
	}
	if err := json.NewDecoder(req.Body).Decode(&p); err != nil {
		r.mu.Lock()
		r.bodyErrs++
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	msg, _ := middleware.WebhookFromContext(req.Context())
	sub, ok := strings.CutPrefix(req.URL.Path, "/cb/")
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !ok:
		r.stray++
	case r.seen[msg.ID]:
		r.dups++
	default:
		r.seen[msg.ID] = true
		r.bySub[sub] = append(r.bySub[sub], callback{id: msg.ID, typ: p.Type, run: p.Data.Name, phase: p.Data.Phase, at: time.Now()})
	}
	w.WriteHeader(http.StatusNoContent)
}

// since is how long ago the last request arrived.
func (r *receiver) since() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Since(r.last)
}

// of returns the deliveries for submit sub, in order of arrival.
func (r *receiver) of(sub string) []callback {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]callback(nil), r.bySub[sub]...)
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}
