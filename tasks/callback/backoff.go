package callback

import (
	"errors"
	"time"
)

// DefaultSchedule is the retry plan: the delay after each failed attempt,
// the first attempt being immediate. Eight attempts over about 27.5 hours
// (plus jitter), as Svix and other Standard Webhooks senders do, so a
// receiver that is down for a day still gets its callback.
var DefaultSchedule = []time.Duration{
	5 * time.Second,
	5 * time.Minute,
	30 * time.Minute,
	2 * time.Hour,
	5 * time.Hour,
	10 * time.Hour,
	10 * time.Hour,
}

const (
	// DefaultJitter is the share of each step added at random to a retry,
	// so that callbacks that failed together (a receiver outage) do not
	// all come back at the same instant.
	DefaultJitter = 0.2
	// DefaultMaxRetryAfter caps the delay a receiver can ask for with
	// Retry-After, so that a misbehaving receiver cannot park a callback
	// for days.
	DefaultMaxRetryAfter = time.Hour
)

// plan places retries: after the n-th attempt fails, the next is due
// Schedule[n-1] later, plus up to Jitter×Schedule[n-1] at random, or later
// still when the receiver's Retry-After asks for it. After
// len(Schedule)+1 failed attempts the delivery is given up.
type plan struct {
	schedule      []time.Duration
	jitter        float64
	maxRetryAfter time.Duration
	rand          func() float64 // in [0, 1)
}

func (p *plan) validate() error {
	for _, s := range p.schedule {
		if s <= 0 {
			return errors.New("callback: WorkerConfig.Schedule steps must be positive")
		}
	}
	if p.jitter > 1 {
		return errors.New("callback: WorkerConfig.Jitter must be at most 1")
	}
	return nil
}

// next returns when to try again after attempt number n (from 1) failed at
// now, or false when the plan is exhausted. retryAfter, when the receiver
// sent one, moves the retry later (never earlier), up to maxRetryAfter from
// now.
func (p *plan) next(n int, now time.Time, retryAfter time.Duration) (time.Time, bool) {
	if n < 1 || n > len(p.schedule) {
		return time.Time{}, false
	}
	step := p.schedule[n-1]
	// Jitter only ever delays, so no retry comes sooner than planned.
	t := now.Add(step + time.Duration(p.jitter*p.rand()*float64(step)))
	if retryAfter > 0 {
		if ra := now.Add(min(retryAfter, p.maxRetryAfter)); ra.After(t) {
			t = ra
		}
	}
	return t, true
}
