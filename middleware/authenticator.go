package middleware

import (
	"context"
	"errors"
)

// ErrInvalidCredentials is returned, possibly wrapped, by an Authenticator
// that refuses a credential: unknown, expired, badly signed, or of a kind it
// does not handle. Any other error is an operational failure (a key set that
// cannot be fetched); Passthrough answers both with 401, but logs the second
// kind louder.
var ErrInvalidCredentials = errors.New("middleware: invalid credentials")

// An Authenticator verifies credentials and says who presented them.
// Implementations must be safe for concurrent use and must not keep or log
// the raw credential.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (Identity, error)
}

// AuthenticatorFunc adapts a function to the Authenticator interface.
type AuthenticatorFunc func(ctx context.Context, c Credentials) (Identity, error)

// Authenticate calls f(ctx, c).
func (f AuthenticatorFunc) Authenticate(ctx context.Context, c Credentials) (Identity, error) {
	return f(ctx, c)
}

type chain []Authenticator

// Chain returns an Authenticator that tries auths in order and returns the
// first identity one of them accepts. A refusal (ErrInvalidCredentials) moves
// on to the next; so does an operational error, so that an unreachable OIDC
// issuer does not lock out static tokens. When every authenticator fails,
// Chain returns the first operational error if there was one, else
// ErrInvalidCredentials. Put cheap authenticators (static tokens) first.
func Chain(auths ...Authenticator) Authenticator {
	for _, a := range auths {
		if a == nil {
			panic("middleware: Chain: nil Authenticator")
		}
	}
	return chain(auths)
}

func (ch chain) Authenticate(ctx context.Context, c Credentials) (Identity, error) {
	var opErr error
	for _, a := range ch {
		id, err := a.Authenticate(ctx, c)
		if err == nil {
			return id, nil
		}
		if opErr == nil && !errors.Is(err, ErrInvalidCredentials) {
			opErr = err
		}
		if ctx.Err() != nil {
			return Identity{}, ctx.Err()
		}
	}
	if opErr != nil {
		return Identity{}, opErr
	}
	return Identity{}, ErrInvalidCredentials
}
