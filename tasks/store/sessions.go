package store

import (
	"context"
	"time"

	"github.com/taskgate/taskgate/middleware/identity"
)

// Sessions keeps browser sessions (identity.Session) for
// middleware.Sessions, which the store satisfies. Every Store has them.
type Sessions interface {
	// CreateSession stores a new session.
	CreateSession(ctx context.Context, s identity.Session) error
	// LookupSession returns the session whose IDHash is idHash, with found
	// false when there is none. It does not judge expiry: the caller's
	// clock does.
	LookupSession(ctx context.Context, idHash string) (s identity.Session, found bool, err error)
	// DeleteSession deletes the session whose IDHash is idHash, if any.
	DeleteSession(ctx context.Context, idHash string) error
	// DeleteExpiredSessions deletes the sessions that expired at or before
	// now and returns how many it deleted.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)
}
