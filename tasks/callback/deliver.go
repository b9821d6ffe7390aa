package callback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/taskgate/taskgate/internal/stdwebhook"
)

// Errors a Result carries. A non-2xx answer is a *StatusError.
var (
	// ErrGone: the receiver answered 410 Gone, asking us to stop.
	ErrGone = errors.New("callback: receiver answered 410 Gone")
	// ErrNoSecret: a Config without signing secrets.
	ErrNoSecret = errors.New("callback: no signing secret configured")
)

// StatusError is a receiver's answer other than 2xx.
type StatusError struct {
	StatusCode int
}

func (e *StatusError) Error() string {
	if e.StatusCode >= 300 && e.StatusCode < 400 {
		return fmt.Sprintf("callback: receiver answered %d (redirects are not followed)", e.StatusCode)
	}
	return fmt.Sprintf("callback: receiver answered %d", e.StatusCode)
}

// Message is one callback to send: what the outbox holds, ready to sign.
type Message struct {
	// ID is sent as webhook-id. It is the outbox entry's id, the same on
	// every attempt, so receivers can deduplicate.
	ID string
	// URL receives a POST.
	URL string
	// Body is the JSON payload (see EncodePayload); identical across
	// attempts.
	Body []byte
	// TraceParent, when set, is sent as the W3C traceparent header: the
	// delivery's span, in the trace of the run's submit.
	TraceParent string
}

// Result is the outcome of one attempt.
type Result struct {
	// At is when the attempt started; Duration how long it took.
	At       time.Time
	Duration time.Duration
	// StatusCode is the receiver's status; zero when no response came.
	StatusCode int
	// RetryAfter is the delay the receiver asked for with Retry-After (on
	// any non-2xx status), zero when it asked for none. Not capped here.
	RetryAfter time.Duration
	// Err is nil when the callback was delivered (2xx). Otherwise it says
	// why: a *StatusError, ErrGone, ErrForbiddenAddress, ErrInvalidURL, or
	// a transport error.
	Err error
	// Permanent marks a failure that retrying cannot fix: 410 Gone, an
	// invalid URL, or a destination the SSRF guard refuses.
	Permanent bool
}

// Delivered reports whether the receiver accepted the callback with 2xx.
func (r Result) Delivered() bool { return r.Err == nil }

// Config configures a Deliverer. Secrets is required; the zero value of
// every other field is the production default.
type Config struct {
	// Secrets sign every callback. Give several while a secret rotates
	// (new first): each attempt then carries one signature per secret, so
	// receivers that know either one accept it.
	Secrets []stdwebhook.Secret
	// Client sends the requests. Nil builds one with NewClient from
	// AllowPrivate and Timeout. A custom client should keep NewClient's
	// guard, redirect and timeout behaviour.
	Client *http.Client
	// AllowPrivate lifts the SSRF guard (TASKGATE_WEBHOOK_ALLOW_PRIVATE=1);
	// only used when Client is nil.
	AllowPrivate bool
	// Timeout bounds one attempt; zero means DefaultTimeout. Only used when
	// Client is nil.
	Timeout time.Duration
	// Resolver resolves receivers' host names; nil means
	// net.DefaultResolver. Only used when Client is nil.
	Resolver *net.Resolver
	// MaxResponseBytes bounds how much of a response body is read; zero
	// means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// UserAgent is sent with every callback; empty means
	// "taskgate-webhooks/1".
	UserAgent string
	// Now is the clock that stamps webhook-timestamp; nil means time.Now.
	Now func() time.Time
}

func (c *Config) validate() error {
	if len(c.Secrets) == 0 {
		return ErrNoSecret
	}
	for i, s := range c.Secrets {
		if s.IsZero() {
			return fmt.Errorf("callback: Config.Secrets[%d] is empty", i)
		}
	}
	if c.MaxResponseBytes < 0 {
		return errors.New("callback: Config.MaxResponseBytes must not be negative")
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.UserAgent == "" {
		c.UserAgent = "taskgate-webhooks/1"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Client == nil {
		client, err := NewClient(ClientConfig{AllowPrivate: c.AllowPrivate, Timeout: c.Timeout, Resolver: c.Resolver})
		if err != nil {
			return err
		}
		c.Client = client
	}
	return nil
}

// Deliverer signs and sends callbacks, one attempt at a time. It is safe for
// concurrent use. The retrying, durable side is Worker.
type Deliverer struct {
	cfg Config
}

// New returns a Deliverer.
func New(cfg Config) (*Deliverer, error) {
	cfg.Secrets = append([]stdwebhook.Secret(nil), cfg.Secrets...)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Deliverer{cfg: cfg}, nil
}

// Deliver makes one attempt: it POSTs msg.Body to msg.URL with a fresh
// webhook-timestamp and signature and the stable webhook-id, and reports
// what happened. Only a 2xx answer counts as delivered. It never retries.
func (d *Deliverer) Deliver(ctx context.Context, msg Message) Result {
	start := d.cfg.Now()
	res := d.deliver(ctx, msg, start)
	res.At = start
	res.Duration = d.cfg.Now().Sub(start)
	return res
}

func (d *Deliverer) deliver(ctx context.Context, msg Message, now time.Time) Result {
	// Re-check at send time: the outbox may hold a URL written by an older
	// version, or by hand.
	if err := ValidateURL(msg.URL); err != nil {
		return Result{Err: err, Permanent: true}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, msg.URL, bytes.NewReader(msg.Body))
	if err != nil {
		return Result{Err: fmt.Errorf("%w: %w", ErrInvalidURL, err), Permanent: true}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.cfg.UserAgent)
	stdwebhook.SetHeaders(req.Header, d.cfg.Secrets, msg.ID, now, msg.Body)
	if msg.TraceParent != "" {
		req.Header.Set("Traceparent", msg.TraceParent)
	}

	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		// *url.Error quotes the whole URL, whose query may hold the
		// receiver's token; the error is logged and shown on the run, so
		// keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Result{Err: err, Permanent: errors.Is(err, ErrForbiddenAddress)}
	}
	// Read a bounded prefix so that the connection can be reused, then drop
	// the rest with the connection.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, d.cfg.MaxResponseBytes))
	_ = resp.Body.Close()

	res := Result{StatusCode: resp.StatusCode}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return res
	case resp.StatusCode == http.StatusGone:
		res.Err, res.Permanent = ErrGone, true
	default:
		res.Err = &StatusError{StatusCode: resp.StatusCode}
	}
	res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	return res
}

// ParseRetryAfter reads a Retry-After value, delay-seconds or an HTTP date
// (RFC 9110 section 10.2.3), relative to now. It returns zero for an empty,
// malformed or past value.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Clamp before multiplying so a huge value cannot overflow.
		const maxSecs = int64(365 * 24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
