package middleware

import (
	"context"
	"slices"
	"time"
)

// Identity is a verified caller. It never holds the raw credential.
type Identity struct {
	Subject string   `json:"subject"`
	Name    string   `json:"name,omitempty"`
	Email   string   `json:"email,omitempty"`
	Groups  []string `json:"groups"`
	// Claims are the raw token claims (OIDC) or nil.
	Claims map[string]any `json:"-"`
	// Expiry bounds how long the identity may be cached; zero means the
	// authenticator gave no expiry.
	Expiry time.Time `json:"-"`
}

// InGroup reports whether the identity belongs to group g.
func (id Identity) InGroup(g string) bool {
	return g != "" && slices.Contains(id.Groups, g)
}

type identityKey struct{}

// WithIdentity returns a context carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFromContext returns the verified caller of the request, if any.
func IdentityFromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
