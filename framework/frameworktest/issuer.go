package frameworktest

import (
	"testing"

	"github.com/taskgate/taskgate/middleware/oidctest"
)

// The test OIDC issuer lives in middleware/oidctest, where middleware's own
// tests use it without importing framework; these names keep tests written
// against frameworktest compiling.

// DefaultAudience is the "aud" of tokens minted without one.
const DefaultAudience = oidctest.DefaultAudience

// DefaultSubject is the "sub" of tokens minted without one.
const DefaultSubject = oidctest.DefaultSubject

// Issuer is a local OpenID Connect issuer served by httptest
// (oidctest.Issuer).
type Issuer = oidctest.Issuer

// KeyType picks the key that signs a minted token.
type KeyType = oidctest.KeyType

// Key types of the Issuer.
const (
	RSA = oidctest.RSA // RS256, the default
	EC  = oidctest.EC  // ES256 on P-256
)

// MintOption changes how Mint signs a token.
type MintOption = oidctest.MintOption

// NewIssuer starts an issuer that stops when the test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	return oidctest.NewIssuer(t)
}

// WithKey signs with the key of type kt instead of the RSA key.
func WithKey(kt KeyType) MintOption { return oidctest.WithKey(kt) }

// WithKeyID puts kid in the header instead of the signing key's id; ""
// leaves the kid header out.
func WithKeyID(kid string) MintOption { return oidctest.WithKeyID(kid) }

// WithHeader adds a protected header.
func WithHeader(name string, value any) MintOption { return oidctest.WithHeader(name, value) }

// TamperPayload returns token with claims changed in its payload and the
// original signature kept: a forgery a verifier must refuse.
func TamperPayload(t testing.TB, token string, claims map[string]any) string {
	t.Helper()
	return oidctest.TamperPayload(t, token, claims)
}
