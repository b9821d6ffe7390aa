package middleware

import (
	"context"
	"log/slog"
)

// Source says where a credential was found on the request.
type Source uint8

// The places an [Extractor] can find a credential.
const (
	// SourceNone is the zero Source: no credential.
	SourceNone Source = iota
	// SourceBearer is an "Authorization: Bearer" header (RFC 6750), or
	// fal's "Authorization: Key" (KeyExtractor), verified alike.
	SourceBearer
	// SourceCookie is a named cookie, as a browser session sends it.
	SourceCookie
	// SourceHeader is a custom header such as X-Api-Key.
	SourceHeader
	// SourceKeySecret is a pair of headers holding a key id and its secret,
	// as Modal's proxy auth tokens (Modal-Key, Modal-Secret).
	SourceKeySecret
)

// String returns the lower-case name of the source, as it appears in logs.
func (s Source) String() string {
	switch s {
	case SourceBearer:
		return "bearer"
	case SourceCookie:
		return "cookie"
	case SourceHeader:
		return "header"
	case SourceKeySecret:
		return "key_secret"
	default:
		return "none"
	}
}

// MarshalText encodes the source by name, in JSON as in logs.
func (s Source) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Credentials is what an [Extractor] found on a request, before anyone has
// verified it. Value and Secret are secrets: [Credentials.String],
// [Credentials.GoString], [Credentials.LogValue] and JSON encoding never show
// them, so a Credentials can be logged or printed by mistake without leaking.
type Credentials struct {
	// Scheme is the authorization scheme, "Bearer" or "Key" for SourceBearer
	// and empty for the other sources.
	Scheme string `json:"scheme,omitempty"`
	// Value is the raw credential: the bearer token, the cookie value, the
	// custom header's value, or the key id of a key+secret pair.
	Value string `json:"-"`
	// Secret is the secret half of a key+secret pair; empty otherwise.
	Secret string `json:"-"`
	// Source says where the credential was found.
	Source Source `json:"source"`
	// Name is the header or cookie that carried the credential.
	Name string `json:"name,omitempty"`
}

// redacted stands in for a secret wherever a Credentials is rendered.
const redacted = "[REDACTED]"

// String describes the credential without its value.
func (c Credentials) String() string {
	s := "Credentials{source=" + c.Source.String()
	if c.Name != "" {
		s += " name=" + c.Name
	}
	if c.Scheme != "" {
		s += " scheme=" + c.Scheme
	}
	if c.Value != "" || c.Secret != "" {
		s += " value=" + redacted
	}
	return s + "}"
}

// GoString keeps %#v from printing the raw fields.
func (c Credentials) GoString() string { return c.String() }

// LogValue implements [slog.LogValuer]: the value and secret are replaced by
// a placeholder, so slog.Any("creds", c) is safe.
func (c Credentials) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("source", c.Source.String())}
	if c.Name != "" {
		attrs = append(attrs, slog.String("name", c.Name))
	}
	if c.Scheme != "" {
		attrs = append(attrs, slog.String("scheme", c.Scheme))
	}
	if c.Value != "" || c.Secret != "" {
		attrs = append(attrs, slog.String("value", redacted))
	}
	return slog.GroupValue(attrs...)
}

// requestAuth is the single context value Passthrough stores beside the
// Identity: the credentials and whether the caller is an admin. Keeping both
// in one value saves an allocation per request.
type requestAuth struct {
	creds Credentials
	admin bool
}

type requestAuthKey struct{}

// WithCredentials returns a context carrying c, for code that builds
// outgoing requests on the caller's behalf ([ForwardingTransport]) and for
// tests.
func WithCredentials(ctx context.Context, c Credentials) context.Context {
	return context.WithValue(ctx, requestAuthKey{}, &requestAuth{creds: c})
}

// CredentialsFromContext returns the credentials Passthrough extracted from
// the request, if any. They have been verified when an Identity is also in
// the context.
func CredentialsFromContext(ctx context.Context) (Credentials, bool) {
	ra, ok := ctx.Value(requestAuthKey{}).(*requestAuth)
	if !ok || ra.creds.Source == SourceNone {
		return Credentials{}, false
	}
	return ra.creds, true
}

// IsAdmin reports whether Passthrough found the verified caller in its
// configured AdminGroup.
func IsAdmin(ctx context.Context) bool {
	ra, ok := ctx.Value(requestAuthKey{}).(*requestAuth)
	return ok && ra.admin
}
