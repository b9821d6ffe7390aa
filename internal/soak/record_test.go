//go:build soak

package soak

import (
	"strconv"
	"sync"
	"time"
)

// outcome is one HTTP exchange worth keeping: a failure, or a bad request
// that was accepted.
type outcome struct {
	op       string
	valid    bool
	code     int // 0: no answer (connection refused, reset, timeout)
	detail   string
	sent     time.Time
	answered time.Time
}

// recorder counts every exchange by operation and status, and keeps those
// that may fail the test.
type recorder struct {
	mu     sync.Mutex
	counts map[string]map[string]int
	// trouble: valid requests answered 5xx, not answered, or answered
	// otherwise than the API promises; bad requests answered 5xx or not
	// answered.
	trouble []outcome
	// acceptedBad: bad requests answered 2xx.
	acceptedBad []outcome
	// oddBad: bad requests answered with a 4xx other than the expected one.
	oddBad []outcome
	// latency of answered submits without Prefer: wait, for the summary.
	latency []time.Duration
}

func newRecorder() *recorder { return &recorder{counts: map[string]map[string]int{}} }

func statusLabel(code int) string {
	if code == 0 {
		return "no answer"
	}
	return strconv.Itoa(code)
}

func (r *recorder) count(op string, code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.counts[op]
	if m == nil {
		m = map[string]int{}
		r.counts[op] = m
	}
	m[statusLabel(code)]++
}

func (r *recorder) add(list *[]outcome, o outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*list = append(*list, o)
}

func (r *recorder) addLatency(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latency = append(r.latency, d)
}

// windows are the restart windows: [SIGKILL, healthy + grace].
type windows struct {
	mu    sync.Mutex
	spans []span
}

type span struct{ from, to time.Time } // to is zero while open

func (w *windows) open(at time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.spans = append(w.spans, span{from: at})
	return len(w.spans) - 1
}

func (w *windows) close(i int, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.spans[i].to = at
}

// overlaps reports whether [a, b] meets a window; an open one reaches to
// the end of time.
func (w *windows) overlaps(a, b time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.spans {
		if !b.Before(s.from) && (s.to.IsZero() || !a.After(s.to)) {
			return true
		}
	}
	return false
}

// percentile of sorted durations; p in [0, 1].
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}
