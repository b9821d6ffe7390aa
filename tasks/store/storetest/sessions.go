package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks/store"
)

func sessionHash(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

func testSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	alice := identity.Session{
		IDHash: sessionHash("a"), Subject: "alice", Name: "Alice", Email: "alice@example.com",
		Groups: []string{"admins", "ml"}, Created: t0, Expires: t0.Add(12 * time.Hour),
	}
	bob := identity.Session{IDHash: sessionHash("b"), Subject: "bob", Created: t0, Expires: t0.Add(time.Hour)}
	require.NoError(t, s.CreateSession(ctx, alice))
	require.NoError(t, s.CreateSession(ctx, bob))
	require.Error(t, s.CreateSession(ctx, alice), "an id hash is a primary key")

	got, found, err := s.LookupSession(ctx, alice.IDHash)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, alice, got)
	got, found, err = s.LookupSession(ctx, bob.IDHash)
	require.NoError(t, err)
	require.True(t, found)
	require.Empty(t, got.Groups)
	require.Equal(t, "bob", got.Identity().Subject)
	require.NotNil(t, got.Identity().Groups)
	_, found, err = s.LookupSession(ctx, sessionHash("nobody"))
	require.NoError(t, err)
	require.False(t, found)

	// Expiry is inclusive: bob's session ends at t0+1h.
	n, err := s.DeleteExpiredSessions(ctx, t0.Add(time.Hour-time.Nanosecond))
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = s.DeleteExpiredSessions(ctx, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, found, err = s.LookupSession(ctx, bob.IDHash)
	require.NoError(t, err)
	require.False(t, found)

	require.NoError(t, s.DeleteSession(ctx, alice.IDHash))
	require.NoError(t, s.DeleteSession(ctx, alice.IDHash), "deleting twice is no error")
	_, found, err = s.LookupSession(ctx, alice.IDHash)
	require.NoError(t, err)
	require.False(t, found)
}
