package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks/store"
)

// The stored caller keeps who submitted a run, never the token's claims, so
// a run handed over in process and one read back after a restart give the
// task the same identity.
func TestCallerKeepsTheStoredPartOfAnIdentity(t *testing.T) {
	t.Parallel()
	id := identity.Identity{
		Subject: "alice", Name: "Alice", Email: "a@example.com", Groups: []string{"ml"},
		Claims: map[string]any{"sub": "alice"}, Expiry: time.Unix(1, 0),
	}
	c := store.CallerOf(id)
	require.Equal(t, store.Caller{Subject: "alice", Name: "Alice", Email: "a@example.com", Groups: []string{"ml"}}, c)
	require.Equal(t, identity.Identity{Subject: "alice", Name: "Alice", Email: "a@example.com", Groups: []string{"ml"}}, c.Identity())
}
