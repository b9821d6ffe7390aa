package callback

import (
	"errors"
	"net"
	"net/http"
	"time"
)

const (
	// DefaultTimeout bounds one delivery attempt end to end: connect, TLS,
	// request, response headers and the bounded read of the response body.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxResponseBytes is how much of a receiver's response body is
	// read (and discarded) so that the connection can be reused; a receiver
	// cannot make taskgate read more.
	DefaultMaxResponseBytes int64 = 64 << 10

	dialTimeout = 5 * time.Second
	keepAlive   = 30 * time.Second
)

// ClientConfig configures NewClient. The zero value is the production
// setting: guarded, 10 s timeout.
type ClientConfig struct {
	// AllowPrivate lifts the SSRF guard so callbacks may reach loopback and
	// private addresses. For local development and tests only
	// (TASKGATE_WEBHOOK_ALLOW_PRIVATE=1).
	AllowPrivate bool
	// Timeout bounds a whole attempt; zero means DefaultTimeout.
	Timeout time.Duration
	// Resolver resolves host names; nil means net.DefaultResolver. Whatever
	// resolves a name, the guard judges the address actually dialed.
	Resolver *net.Resolver
}

func (c *ClientConfig) validate() error {
	if c.Timeout < 0 {
		return errors.New("callback: ClientConfig.Timeout must not be negative")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return nil
}

// NewClient returns the HTTP client that delivers callbacks. It dials only
// public addresses unless cfg.AllowPrivate, checking each address at
// connection time; ignores proxy environment variables (a proxy would dial
// on our behalf, past the guard); never follows redirects (a 3xx is
// returned as the response, so it counts as a failed attempt); and gives up
// after cfg.Timeout.
func NewClient(cfg ClientConfig) (*http.Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dialer := newDialer(cfg.AllowPrivate, cfg.Resolver)
	tr := &http.Transport{
		Proxy:             nil,
		DialContext:       dialer.DialContext,
		ForceAttemptHTTP2: true,
		// Every callback in flight to a receiver keeps its connection
		// alive for the next: up to the worker's default Concurrency per
		// receiver, so that a PerHost raised that far still reuses them.
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    dialTimeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}
