package tasks

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// RetryPolicy decides whether and when a failed attempt is tried again.
type RetryPolicy struct {
	// MaxAttempts counts the first attempt: 1 means never retry.
	MaxAttempts int `json:"max_attempts"`
	// InitialBackoff is the wait before the second attempt.
	InitialBackoff time.Duration `json:"initial_backoff"`
	// MaxBackoff caps every wait.
	MaxBackoff time.Duration `json:"max_backoff"`
	// Multiplier grows the wait after each failure (at least 1).
	Multiplier float64 `json:"multiplier"`
	// Jitter spreads each wait by up to this fraction either way (0 to 1),
	// so that many runs failing together do not retry together.
	Jitter float64 `json:"jitter"`
}

// DefaultRetryPolicy: three attempts, 1 s then 2 s, capped at 5 minutes.
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts:    3,
	InitialBackoff: time.Second,
	MaxBackoff:     5 * time.Minute,
	Multiplier:     2,
	Jitter:         0.2,
}

// NoRetry is a policy of a single attempt.
var NoRetry = RetryPolicy{MaxAttempts: 1, Multiplier: 1}

func (p RetryPolicy) validate() error {
	switch {
	case p.MaxAttempts < 1:
		return fmt.Errorf("retry: max attempts %d is below 1", p.MaxAttempts)
	case p.InitialBackoff < 0 || p.MaxBackoff < 0:
		return errors.New("retry: negative backoff")
	case p.MaxBackoff > 0 && p.InitialBackoff > p.MaxBackoff:
		return fmt.Errorf("retry: initial backoff %s exceeds max backoff %s", p.InitialBackoff, p.MaxBackoff)
	case p.Multiplier < 1:
		return fmt.Errorf("retry: multiplier %g is below 1", p.Multiplier)
	case p.Jitter < 0 || p.Jitter > 1:
		return fmt.Errorf("retry: jitter %g is outside [0, 1]", p.Jitter)
	}
	return nil
}

// Backoff is the wait after failed attempt number attempt (from 1). u is a
// uniform random number in [0, 1) that the caller draws, so tests can fix it.
func (p RetryPolicy) Backoff(attempt int, u float64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := float64(p.InitialBackoff) * math.Pow(p.Multiplier, float64(attempt-1))
	if p.MaxBackoff > 0 && d > float64(p.MaxBackoff) {
		d = float64(p.MaxBackoff)
	}
	d *= 1 + p.Jitter*(2*u-1)
	if p.MaxBackoff > 0 && d > float64(p.MaxBackoff) {
		d = float64(p.MaxBackoff)
	}
	return time.Duration(d)
}

// RetryAfterError asks for another attempt after Delay. It does not count
// against the policy's MaxAttempts.
type RetryAfterError struct{ Delay time.Duration }

func (e *RetryAfterError) Error() string { return fmt.Sprintf("retry after %s", e.Delay) }

// RetryAfter returns a control error: try again after d, without counting
// this attempt as a failure (River's JobSnooze).
func RetryAfter(d time.Duration) error { return &RetryAfterError{Delay: d} }

// PermanentError ends the run as failed with no further attempts.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that the run fails now, whatever the retry policy.
func Permanent(err error) error {
	if err == nil {
		err = errors.New("permanent failure")
	}
	return &PermanentError{Err: err}
}
