package callback

import (
	"errors"
	"time"
)

// DefaultSchedule is the retry plan: the delays between planned attempts
// after the first, immediate one. Eight attempts over about 27.5 hours, as
// Svix and other Standard Webhooks senders do, so a receiver that is down
// for a day still gets its callback.
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

// plan places retries. Attempt k+1 (k >= 1) is planned at
// created + Schedule[0] + … + Schedule[k-1], plus up to Jitter×Schedule[k-1]
// at random. Planning from the delivery's creation rather than from the
// last attempt needs no per-delivery counter, keeps the whole window as
// configured, and means a worker that was down for hours resumes at the
// next point of the plan instead of replaying the early, short steps.
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

// next returns when to try again after an attempt that failed at now, or
// false when the plan is exhausted. retryAfter, when the receiver sent one,
// moves the retry later (never earlier), up to maxRetryAfter from now.
func (p *plan) next(created, now time.Time, retryAfter time.Duration) (time.Time, bool) {
	elapsed := now.Sub(created)
	var at time.Duration
	for _, step := range p.schedule {
		at += step
		if at <= elapsed {
			continue
		}
		// Jitter only ever delays, so an attempt never runs before its
		// planned point, and its failure never lands before that point
		// (which would plan the same point again).
		t := created.Add(at + time.Duration(p.jitter*p.rand()*float64(step)))
		if retryAfter > 0 {
			if ra := now.Add(min(retryAfter, p.maxRetryAfter)); ra.After(t) {
				t = ra
			}
		}
		return t, true
	}
	return time.Time{}, false
}
