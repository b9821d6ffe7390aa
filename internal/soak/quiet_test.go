//go:build soak

package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// gate lets the load be paused: workers and followers pass it before each
// operation, and a pause waits until none is inside.
type gate struct {
	mu      sync.Mutex
	paused  bool
	resumed chan struct{} // closed when a pause ends
	busy    int
}

func newGate() *gate { return &gate{resumed: make(chan struct{})} }

// enter waits while the load is paused; false once ctx ended.
func (g *gate) enter(ctx context.Context) bool {
	for ctx.Err() == nil {
		g.mu.Lock()
		if !g.paused {
			g.busy++
			g.mu.Unlock()
			return true
		}
		ch := g.resumed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	return false
}

func (g *gate) leave() {
	g.mu.Lock()
	g.busy--
	g.mu.Unlock()
}

func (g *gate) isPaused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused
}

func (g *gate) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.paused {
		g.paused, g.resumed = true, make(chan struct{})
	}
}

func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		g.paused = false
		close(g.resumed)
	}
}

// idle waits until no operation is inside, or until the deadline.
func (g *gate) idle(deadline time.Time) bool {
	for {
		g.mu.Lock()
		busy := g.busy
		g.mu.Unlock()
		if busy == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quietFigure is an instance's reading at a quiet moment (see the package
// doc): the median of three samples once the load paused, every run ended,
// callbacks stopped and idle connections were closed.
type quietFigure struct {
	figure
	// drained is false when a step of the quiet did not finish in time:
	// the figure may then count load.
	drained bool
	detail  string
	took    time.Duration // pause to the first sample
}

// quietLead is how long before a kill (or the end) the quiet begins: time
// enough to drain and sample, with load again for several seconds before
// the kill, so that the kill still lands among requests and runs.
const quietLead = 25 * time.Second

// quiet pauses the load, lets it drain, closes idle connections on both
// sides, samples the process, and resumes the load.
func (s *soak) quiet(ctx context.Context) quietFigure {
	l := s.load
	began := time.Now()
	l.gate.pause()
	defer l.gate.resume()
	q := quietFigure{drained: true}
	if !l.gate.idle(began.Add(12 * time.Second)) {
		q.drained, q.detail = false, "operations still in flight after 12s"
	}
	// No run in any non-terminal phase: no task is running, no callback
	// is due.
	for {
		code, b, ok := l.do(ctx, exchange{op: "queue (quiet)", method: http.MethodGet, path: "/queue", owner: 0,
			expect: func(c int) bool { return c == http.StatusOK }})
		if !ok {
			return q
		}
		var qs struct {
			Runs map[string]int `json:"runs"`
		}
		active := -1
		if code == http.StatusOK && json.Unmarshal(b, &qs) == nil {
			active = 0
			for _, n := range qs.Runs {
				active += n
			}
		}
		if active == 0 {
			break
		}
		if time.Since(began) > 18*time.Second {
			q.drained, q.detail = false, fmt.Sprintf("%d runs not terminal after 18s", active)
			break
		}
		pause(ctx, 100*time.Millisecond)
	}
	for l.rcv.since() < 500*time.Millisecond {
		if time.Since(began) > 20*time.Second {
			q.drained, q.detail = false, "callbacks still arriving after 20s"
			break
		}
		pause(ctx, 100*time.Millisecond)
	}
	// Close until the process holds no connection to the receiver: one
	// that was in use a moment ago is idle now.
	for {
		l.closeIdle()
		pause(ctx, 300*time.Millisecond)
		if n := l.rcv.open(); n == 0 || time.Since(began) > 20*time.Second {
			if n > 0 {
				q.drained, q.detail = false, fmt.Sprintf("%d callback connections still open after 20s", n)
			}
			break
		}
	}
	pause(ctx, time.Second) // the process reads the EOFs and its goroutines end
	q.took = time.Since(began)
	var samples []sample
	for i := range 3 {
		if i > 0 {
			pause(ctx, 500*time.Millisecond)
		}
		if sm, ok := s.sampler.read(); ok {
			samples = append(samples, sm)
		}
	}
	if f, ok := medianOf(samples, func(sample) bool { return true }); ok {
		q.figure = f
		s.sampler.saveProfile(fmt.Sprintf("instance-%d-quiet", f.instance))
	} else {
		q.drained, q.detail = false, "no sample"
	}
	return q
}
