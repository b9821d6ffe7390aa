package identity

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

type contextKey struct{}

// NewContext returns a context carrying id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the verified caller of the request, if any.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(contextKey{}).(Identity)
	return id, ok
}
