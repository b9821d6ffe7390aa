package middleware

import (
	"context"

	"github.com/taskgate/taskgate/middleware/identity"
)

// Identity is a verified caller; see package identity, which holds it so
// that packages below the HTTP layer can name it without importing
// middleware.
type Identity = identity.Identity

// WithIdentity returns a context carrying id (identity.NewContext).
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return identity.NewContext(ctx, id)
}

// IdentityFromContext returns the verified caller of the request, if any
// (identity.FromContext).
func IdentityFromContext(ctx context.Context) (Identity, bool) {
	return identity.FromContext(ctx)
}
