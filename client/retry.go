package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"
)

// RetryPolicy says how a request is retried: after a network error, a 429
// (too many requests) or a 503 (a server that drains, restarts or is
// overloaded), with capped exponential backoff and jitter, or after the
// server's Retry-After where it gives one. Zero fields take the defaults.
//
// Which requests: reads, and submits (each carries an Idempotency-Key the
// client generates once per call, so a retry returns the run the first
// attempt may have created), are retried after any network error. Other
// changes (abort, the queue's submit and cancel) are retried only when
// they surely never reached the server: the connection was refused, or
// the server answered 429 or 503.
//
// 507 (the server's storage is full) is not retried: an operator must
// act, and retrying would only add load; the *Error carries the server's
// RetryAfter for callers that want to try later.
type RetryPolicy struct {
	// MaxAttempts counts the first try; default 6. 1 never retries.
	MaxAttempts int
	// InitialBackoff is the wait after the first failure, doubled after
	// each further one up to MaxBackoff; defaults 250 ms and 8 s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxRetryAfter is the longest Retry-After waited for; a longer one
	// ends the retries with the *Error. Default 2 min.
	MaxRetryAfter time.Duration
}

func (p RetryPolicy) withDefaults() (RetryPolicy, error) {
	if p.MaxAttempts < 0 || p.InitialBackoff < 0 || p.MaxBackoff < 0 || p.MaxRetryAfter < 0 {
		return p, errors.New("client: Options.Retry fields must not be negative")
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 6
	}
	if p.InitialBackoff == 0 {
		p.InitialBackoff = 250 * time.Millisecond
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = 8 * time.Second
	}
	if p.MaxRetryAfter == 0 {
		p.MaxRetryAfter = 2 * time.Minute
	}
	p.MaxBackoff = max(p.MaxBackoff, p.InitialBackoff)
	return p, nil
}

// backoff is the wait after the n-th failed attempt (n ≥ 1): half fixed,
// half random ("equal jitter"), so that clients that failed together do
// not come back together.
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// retryableStatus: the server did not act and says to come back.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable
}

// retryableNetErr reports whether a request that failed with err (not an
// answer) may be sent again.
func retryableNetErr(err error, idempotent bool) bool {
	var (
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
	)
	if errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalidErr) {
		return false
	}
	if idempotent {
		return true
	}
	// A refused or failed dial never carried the request.
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// noRetry marks an error of the client itself (a request it cannot build,
// credentials it cannot get): sending again would fail the same way.
type noRetry struct{ err error }

func (e noRetry) Error() string { return e.err.Error() }
func (e noRetry) Unwrap() error { return e.err }

// withRetries runs attempt until it gets a 2xx answer (or one that carries
// cl.recorded), a final error, or the policy gives up. On a non-2xx answer,
// attempt leaves its body readable; withRetries closes it.
func (c *Client) withRetries(ctx context.Context, cl *call, attempt func(context.Context) (*http.Response, error)) error {
	for n := 1; ; n++ {
		resp, err := attempt(ctx)
		var wait time.Duration
		switch {
		case err != nil:
			var nr noRetry
			if errors.As(err, &nr) {
				return nr.err
			}
			if ctx.Err() != nil || !retryableNetErr(err, cl.idempotent) || n >= c.retry.MaxAttempts {
				return err
			}
			wait = c.retry.backoff(n)
		case resp.StatusCode/100 == 2 || (cl.recorded != "" && resp.Header.Get(cl.recorded) != ""):
			return nil
		default:
			body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
			resp.Body.Close()
			apiErr := errorFrom(resp.StatusCode, resp.Header, body, resp.Request.Header.Get("X-Request-Id"))
			if !retryableStatus(resp.StatusCode) || n >= c.retry.MaxAttempts || apiErr.RetryAfter > c.retry.MaxRetryAfter {
				return apiErr
			}
			err, wait = apiErr, c.retry.backoff(n)
			if apiErr.RetryAfter > 0 {
				wait = apiErr.RetryAfter
			}
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("%w (no time left to retry)", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errors.Join(ctx.Err(), err)
		}
	}
}

// parseRetryAfter reads Retry-After: seconds, or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
