package client

import "time"

// Strict makes c refuse answers with fields its types lack: the check
// that the client keeps up with the server.
func Strict(c *Client) { c.strict = true }

// ErrorFrom exposes errorFrom to the tests.
var ErrorFrom = errorFrom

// ParseRetryAfter exposes parseRetryAfter to the tests.
var ParseRetryAfter = parseRetryAfter

// BackoffOf is p's wait (defaults filled) after the n-th failed attempt.
func BackoffOf(p RetryPolicy, n int) time.Duration {
	p, _ = p.withDefaults()
	return p.backoff(n)
}

// SetLastingStream sets lastingStream until the test ends; the test must
// not be parallel.
func SetLastingStream(t interface{ Cleanup(func()) }, d time.Duration) {
	old := lastingStream
	lastingStream = d
	t.Cleanup(func() { lastingStream = old })
}
