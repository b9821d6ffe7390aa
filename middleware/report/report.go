// Package report carries what the middleware learned about one request
// (the verified subject, why it was refused) to whoever serves it: the
// App's access log and metrics read it once the request is served.
//
// Place on the data path (request → auth → environment → dispatcher →
// scheduler → node agent → store → callbacks): beside auth, written by
// middleware and the environments, read by framework's telemetry. It
// imports only the standard library, so that middleware never depends on
// metrics.
package report

import "context"

// Refusal says why a request was refused with 401, 403 or 429, in words
// from a fixed set: metrics use it as a label value, so it never carries
// anything taken from the request.
type Refusal string

// The refusals the middleware (and the environments) report.
const (
	// MissingCredentials: no credential at all (401).
	MissingCredentials Refusal = "missing_credentials"
	// InvalidToken: a credential that is malformed or that the
	// authenticator refused (401).
	InvalidToken Refusal = "invalid_token"
	// CSRF: a cookie-authenticated unsafe request from another
	// site (403).
	CSRF Refusal = "csrf"
	// ForbiddenGroup: a verified caller outside the required
	// group (403).
	ForbiddenGroup Refusal = "forbidden_group"
	// ForbiddenTask: a task outside the environment's allowlist
	// (403).
	ForbiddenTask Refusal = "forbidden_task"
	// RateLimit: over RateLimitByIdentity's limit (429).
	RateLimit Refusal = "rate_limit"
	// MaxInFlight: no free slot of a Limiter within its queue
	// timeout (429).
	MaxInFlight Refusal = "max_in_flight"
)

// A Report collects what the middleware learned about one request, for
// whoever put it in the request's context with NewContext: the App reads
// it for its access log and metrics once the request is served. It is
// written only on the request's goroutine, before the handler returns,
// so it needs no lock. The middleware never depends on it being there.
type Report struct {
	// Subject is the verified caller's, set by Passthrough.
	Subject string
	// Refusal is set by the middleware (or handler) that answers 401,
	// 403 or 429, through Refuse.
	Refusal Refusal
}

type reportKey struct{}

// NewContext returns a context whose requests fill in rep.
func NewContext(ctx context.Context, rep *Report) context.Context {
	return context.WithValue(ctx, reportKey{}, rep)
}

// Refuse notes in the request's Report, if it has one, why the
// request is refused. Call it just before writing the 401, 403 or 429.
func Refuse(ctx context.Context, why Refusal) {
	if rep, ok := ctx.Value(reportKey{}).(*Report); ok {
		rep.Refusal = why
	}
}

// SetSubject notes the verified caller in the request's Report.
func SetSubject(ctx context.Context, subject string) {
	if rep, ok := ctx.Value(reportKey{}).(*Report); ok {
		rep.Subject = subject
	}
}
