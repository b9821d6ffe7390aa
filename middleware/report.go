package middleware

import "context"

// Refusal says why a request was refused with 401, 403 or 429, in words
// from a fixed set: metrics use it as a label value, so it never carries
// anything taken from the request.
type Refusal string

// The refusals the middleware (and the environments) report.
const (
	// RefusalMissingCredentials: no credential at all (401).
	RefusalMissingCredentials Refusal = "missing_credentials"
	// RefusalInvalidToken: a credential that is malformed or that the
	// authenticator refused (401).
	RefusalInvalidToken Refusal = "invalid_token"
	// RefusalCSRF: a cookie-authenticated unsafe request from another
	// site (403).
	RefusalCSRF Refusal = "csrf"
	// RefusalForbiddenGroup: a verified caller outside the required
	// group (403).
	RefusalForbiddenGroup Refusal = "forbidden_group"
	// RefusalForbiddenTask: a task outside the environment's allowlist
	// (403).
	RefusalForbiddenTask Refusal = "forbidden_task"
	// RefusalRateLimit: over RateLimitByIdentity's limit (429).
	RefusalRateLimit Refusal = "rate_limit"
	// RefusalMaxInFlight: no free slot of a Limiter within its queue
	// timeout (429).
	RefusalMaxInFlight Refusal = "max_in_flight"
)

// A Report collects what the middleware learned about one request, for
// whoever put it in the request's context with WithReport: the App reads
// it for its access log and metrics once the request is served. It is
// written only on the request's goroutine, before the handler returns,
// so it needs no lock. The middleware never depends on it being there.
type Report struct {
	// Subject is the verified caller's, set by Passthrough.
	Subject string
	// Refusal is set by the middleware (or handler) that answers 401,
	// 403 or 429, through RecordRefusal.
	Refusal Refusal
}

type reportKey struct{}

// WithReport returns a context whose requests fill in rep.
func WithReport(ctx context.Context, rep *Report) context.Context {
	return context.WithValue(ctx, reportKey{}, rep)
}

// RecordRefusal notes in the request's Report, if it has one, why the
// request is refused. Call it just before writing the 401, 403 or 429.
func RecordRefusal(ctx context.Context, why Refusal) {
	if rep, ok := ctx.Value(reportKey{}).(*Report); ok {
		rep.Refusal = why
	}
}

// recordSubject notes the verified caller in the request's Report.
func recordSubject(ctx context.Context, subject string) {
	if rep, ok := ctx.Value(reportKey{}).(*Report); ok {
		rep.Subject = subject
	}
}
