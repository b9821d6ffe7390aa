package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/internal/problem"
)

// waitingRetryAfter is the Retry-After of a request refused because every
// replica waits for resources: a GPU frees when a run ends, seconds away
// at best.
const waitingRetryAfter = 5 * time.Second

// pool balances a held server's requests over its ready replicas and
// keeps their number between Min and Max. Its loop reads each replica's
// state from the store every PollInterval (a replica may run in another
// process); requests take a replica under mu and wait on changed for
// one.
type pool struct {
	s     *Environment
	holds environments.Holds
	cfg   Replicas
	now   func() time.Time

	mu      sync.Mutex
	reps    []*replica
	waiting int           // requests waiting for a free replica
	turn    int           // where pick starts, so that ties rotate
	changed chan struct{} // closed and replaced at each change a waiting request may use
	backoff time.Duration // before replacing a replica that ended by itself
	retryAt time.Time

	cancel context.CancelFunc
	done   chan struct{}
}

// replica is one replica's run as the pool sees it.
type replica struct {
	name     string
	st       environments.HoldStatus
	proxy    *httputil.ReverseProxy // to st.Addr; nil while it answers on none
	inflight int
	lastUsed time.Time
}

func newPool(s *Environment, holds environments.Holds) *pool {
	return &pool{s: s, holds: holds, cfg: s.cfg.Replicas, now: time.Now,
		changed: make(chan struct{}), backoff: s.cfg.RestartBackoff}
}

// start stops what a previous process left and starts the loop, which
// starts Min replicas at once.
func (p *pool) start(ctx context.Context) error {
	p.mu.Lock()
	running := p.cancel != nil
	p.mu.Unlock()
	if running {
		return ErrStarted
	}
	if err := p.holds.StopAll(ctx, "a new process manages the replicas"); err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.mu.Lock()
	p.cancel, p.done = cancel, make(chan struct{})
	p.mu.Unlock()
	go p.loop(lctx, p.done)
	return nil
}

// stop ends the loop and stops every replica, waiting for them as long as
// ctx allows.
func (p *pool) stop(ctx context.Context) error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.cancel = nil
	p.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	p.mu.Lock()
	p.reps = nil
	p.broadcast()
	p.mu.Unlock()
	return p.holds.StopAll(ctx, "the server environment stopped")
}

func (p *pool) log() *slog.Logger {
	return p.s.log().With(slog.String("environment", p.s.cfg.Name))
}

func (p *pool) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(p.cfg.PollInterval)
	defer t.Stop()
	for {
		p.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tick reads every replica, replaces those that ended, and scales.
func (p *pool) tick(ctx context.Context) {
	p.mu.Lock()
	reps := append([]*replica(nil), p.reps...)
	p.mu.Unlock()
	for _, r := range reps {
		st, err := p.holds.Status(ctx, r.name)
		if err != nil {
			if ctx.Err() == nil {
				p.log().Warn("read replica", "run", r.name, "err", err)
			}
			continue
		}
		p.update(r, st)
	}
	if start, stop := p.plan(); start {
		p.add(ctx)
	} else if stop != nil {
		if err := p.holds.Stop(ctx, stop.name, "scaled down after "+p.cfg.ScaledownWindow.String()+" idle"); err != nil {
			p.log().Warn("stop replica", "run", stop.name, "err", err)
		}
	}
}

// update records a replica's state read from the store.
func (p *pool) update(r *replica, st environments.HoldStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st.Addr != r.st.Addr {
		r.proxy = nil
		if st.Addr != "" {
			r.proxy = p.s.proxyTo(&url.URL{Scheme: "http", Host: st.Addr})
			r.lastUsed = p.now()
			p.backoff = p.s.cfg.RestartBackoff // a replica answers: no crash loop
		}
	}
	r.st = st
	if st.Ended() {
		p.log().Warn("replica ended", "run", r.name, "phase", string(st.Phase), "error", st.Error)
		p.remove(r)
		p.retryAt = p.now().Add(p.backoff)
		p.backoff = min(2*p.backoff, p.s.cfg.MaxRestartBackoff)
	}
	p.broadcast()
}

// plan says whether to start a replica (below Min, or requests wait and
// none is on its way, below Max), else which idle one to stop (above
// Min, idle for ScaledownWindow, no request waiting); it removes that
// one from the pool, so no request takes it.
func (p *pool) plan() (start bool, stop *replica) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if now.Before(p.retryAt) {
		return false, nil
	}
	n := len(p.reps)
	pending := false
	for _, r := range p.reps {
		pending = pending || r.proxy == nil
	}
	// Requests that wait while a replica has room are about to take it.
	short := p.waiting > 0 && p.pick() == nil
	if n < p.cfg.Min || short && !pending && n < p.cfg.Max {
		return true, nil
	}
	if n <= p.cfg.Min || p.waiting > 0 {
		return false, nil
	}
	for i := len(p.reps) - 1; i >= 0; i-- {
		r := p.reps[i]
		if r.inflight == 0 && now.Sub(r.lastUsed) >= p.cfg.ScaledownWindow {
			p.remove(r)
			return false, r
		}
	}
	return false, nil
}

// add starts a replica.
func (p *pool) add(ctx context.Context) {
	name, err := p.holds.Start(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.log().Warn("start replica", "err", err)
		}
		return
	}
	p.log().Info("replica started", "run", name)
	p.mu.Lock()
	p.reps = append(p.reps, &replica{name: name, lastUsed: p.now()})
	p.mu.Unlock()
}

// remove drops r from the pool; p.mu is held.
func (p *pool) remove(r *replica) {
	for i, o := range p.reps {
		if o == r {
			p.reps = append(p.reps[:i], p.reps[i+1:]...)
			return
		}
	}
}

// broadcast wakes the requests waiting for a replica; p.mu is held.
func (p *pool) broadcast() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// serve proxies a request to the ready replica with the fewest requests
// in flight, waiting up to QueueTimeout for one with room.
func (p *pool) serve(w http.ResponseWriter, r *http.Request) {
	rep, why, retry := p.acquire(r.Context())
	if rep == nil {
		if r.Context().Err() != nil {
			return // the client left
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
		problem.Write(w, r, http.StatusServiceUnavailable, why)
		return
	}
	defer p.release(rep)
	rep.proxy.ServeHTTP(w, r)
}

// acquire takes a slot of a ready replica, or says why there is none and
// when to try again. While every replica waits for resources it answers
// at once with the scheduler's reason; otherwise (replicas start, or all
// are busy) the request waits, which also makes the loop add a replica.
func (p *pool) acquire(ctx context.Context) (*replica, string, time.Duration) {
	timeout := time.NewTimer(p.cfg.QueueTimeout)
	defer timeout.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if rep := p.pick(); rep != nil {
			p.turn++
			rep.inflight++
			rep.lastUsed = p.now()
			return rep, "", 0
		}
		if why := p.waitingReasonLocked(); why != "" {
			return nil, why, waitingRetryAfter
		}
		p.waiting++
		changed := p.changed
		p.mu.Unlock()
		var expired bool
		select {
		case <-changed:
		case <-ctx.Done():
			expired = true
		case <-timeout.C:
			expired = true
		}
		p.mu.Lock()
		p.waiting--
		if expired {
			return nil, "no replica of the server had room within " + p.cfg.QueueTimeout.String(), time.Second
		}
	}
}

// pick is the ready replica with the fewest requests in flight and room
// for one more, ties taken in turn; p.mu is held.
func (p *pool) pick() *replica {
	var best *replica
	n := len(p.reps)
	for i := range n {
		r := p.reps[(p.turn+i)%n]
		if r.proxy == nil || p.cfg.MaxInFlight > 0 && r.inflight >= p.cfg.MaxInFlight {
			continue
		}
		if best == nil || r.inflight < best.inflight {
			best = r
		}
	}
	return best
}

func (p *pool) release(r *replica) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.inflight--
	r.lastUsed = p.now()
	p.broadcast()
}

// ready reports whether a replica answers.
func (p *pool) ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.reps {
		if r.proxy != nil {
			return true
		}
	}
	return false
}

func (p *pool) waitingReason() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitingReasonLocked()
}

// waitingReasonLocked is why the server cannot answer: every replica
// waits for resources (the first one's reason); "" when a replica answers
// or starts, or there is none. p.mu is held.
func (p *pool) waitingReasonLocked() string {
	why := ""
	for _, r := range p.reps {
		if r.st.Waiting == "" {
			return ""
		}
		if why == "" {
			why = "waiting for resources: " + r.st.Waiting
		}
	}
	return why
}
