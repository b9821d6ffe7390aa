package middleware

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/taskgate/taskgate/middleware/identity"
)

// sessionIDPrefix starts every session id, so that Sessions refuses any
// other cookie value without a store lookup and a session id is told from
// a token at a glance (a secret scanner, a log review).
const sessionIDPrefix = "tgs_"

// DefaultSessionTTL is how long a browser session lasts by default.
const DefaultSessionTTL = 12 * time.Hour

// SessionStore keeps browser sessions; tasks/store's stores implement it.
// Its methods are those of store.Sessions, which documents them.
type SessionStore interface {
	CreateSession(ctx context.Context, s identity.Session) error
	LookupSession(ctx context.Context, idHash string) (identity.Session, bool, error)
	DeleteSession(ctx context.Context, idHash string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)
}

// SessionsConfig configures NewSessions. Only Store is required.
type SessionsConfig struct {
	// Store keeps the sessions. Required.
	Store SessionStore
	// TTL bounds a session's life; default DefaultSessionTTL.
	TTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *SessionsConfig) validate() error {
	if c.Store == nil {
		return errors.New("middleware: SessionsConfig.Store is required")
	}
	if c.TTL < 0 {
		return fmt.Errorf("middleware: SessionsConfig.TTL %v is negative", c.TTL)
	}
	if c.TTL == 0 {
		c.TTL = DefaultSessionTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Sessions are browser sessions kept server-side: signing in (Create)
// gives the browser a random session id of 256 bits for its cookie, and
// the store keeps the signed-in Identity under the id's SHA-256. As an
// Authenticator it resolves a session cookie to that Identity with one
// read of the store per request and no cache, so that ending a session
// (Revoke, at /auth/logout) takes effect at once in every process sharing
// the store.
type Sessions struct {
	store SessionStore
	ttl   time.Duration
	now   func() time.Time
}

var _ Authenticator = (*Sessions)(nil)

// NewSessions returns Sessions over cfg.Store. It panics if cfg is
// invalid, naming the bad setting.
func NewSessions(cfg SessionsConfig) *Sessions {
	if err := cfg.validate(); err != nil {
		panic(err.Error())
	}
	return &Sessions{store: cfg.Store, ttl: cfg.TTL, now: cfg.Now}
}

// TTL returns how long a new session lasts.
func (s *Sessions) TTL() time.Duration { return s.ttl }

// Create starts a session for id and returns its id, for the browser's
// cookie only, and when it expires: after the TTL, or at id.Expiry when
// that comes sooner. It first deletes expired sessions, which keeps the
// table to the sessions alive.
func (s *Sessions) Create(ctx context.Context, id Identity) (sessionID string, expires time.Time, err error) {
	if id.Subject == "" {
		return "", time.Time{}, errors.New("middleware: Sessions.Create: identity has no subject")
	}
	now := s.now()
	if _, err := s.store.DeleteExpiredSessions(ctx, now); err != nil {
		return "", time.Time{}, fmt.Errorf("delete expired sessions: %w", err)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	sessionID = sessionIDPrefix + base64.RawURLEncoding.EncodeToString(b)
	expires = now.Add(s.ttl)
	// A credential that ends sooner (a token pasted on the sign-in page)
	// ends the session with it: a session must not stretch a token's
	// life to the TTL. A sign-in whose token the session replaces (an
	// OIDC ID token) passes no Expiry.
	if !id.Expiry.IsZero() && id.Expiry.Before(expires) {
		expires = id.Expiry
	}
	if !expires.After(now) {
		return "", time.Time{}, errors.New("middleware: Sessions.Create: identity has expired")
	}
	err = s.store.CreateSession(ctx, identity.Session{
		IDHash: sessionHash(sessionID), Subject: id.Subject, Name: id.Name, Email: id.Email,
		Groups: id.Groups, Created: now, Expires: expires,
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("create session: %w", err)
	}
	return sessionID, expires, nil
}

// Authenticate accepts a cookie credential holding a live session id. A
// session id sent any other way (as a bearer token) is refused: it is a
// browser's credential, and only as a cookie does it meet the CSRF check.
func (s *Sessions) Authenticate(ctx context.Context, c Credentials) (Identity, error) {
	if c.Source != SourceCookie || !IsSessionID(c.Value) {
		return Identity{}, refuse("not a session cookie")
	}
	se, found, err := s.store.LookupSession(ctx, sessionHash(c.Value))
	if err != nil {
		return Identity{}, fmt.Errorf("read session: %w", err)
	}
	if !found {
		return Identity{}, refuse("no such session")
	}
	if !s.now().Before(se.Expires) {
		return Identity{}, refuse("session expired")
	}
	return se.Identity(), nil
}

// Revoke ends the session whose id is sessionID, in every process. An
// unknown or malformed id is no error.
func (s *Sessions) Revoke(ctx context.Context, sessionID string) error {
	if !IsSessionID(sessionID) {
		return nil
	}
	return s.store.DeleteSession(ctx, sessionHash(sessionID))
}

// IsSessionID reports whether v has the shape of a session id: the prefix
// and 43 characters of unpadded base64url (256 bits).
func IsSessionID(v string) bool {
	rest, ok := strings.CutPrefix(v, sessionIDPrefix)
	if !ok || len(rest) != 43 {
		return false
	}
	for i := range len(rest) {
		if c := rest[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// sessionHash is the key under which the store keeps a session.
func sessionHash(sessionID string) string {
	h := sha256.Sum256([]byte(sessionID))
	return hex.EncodeToString(h[:])
}
