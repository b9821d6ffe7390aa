package identity_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware/identity"
)

func TestContextCarriesIdentity(t *testing.T) {
	t.Parallel()
	_, ok := identity.FromContext(context.Background())
	require.False(t, ok, "a bare context has no caller")

	ctx := identity.NewContext(context.Background(), identity.Identity{Subject: "alice", Groups: []string{"admins"}})
	id, ok := identity.FromContext(ctx)
	require.True(t, ok)
	require.Equal(t, "alice", id.Subject)
	require.True(t, id.InGroup("admins"))
	require.False(t, id.InGroup(""), "the empty group is no group")
	require.False(t, id.InGroup("ml"))
}
