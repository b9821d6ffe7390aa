package environments_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/middleware"
)

// TestMeAlwaysHasAName: Flyte's webhook clients read me.json()["name"], so
// /me carries the display name, else the subject (a static token has no
// display name).
func TestMeAlwaysHasAName(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	me := s.do(http.MethodGet, "/me", whAlice, "")
	require.Equal(t, http.StatusOK, me.status, me.raw)
	require.Equal(t, "alice", me.body["subject"])
	require.Equal(t, "alice", me.body["name"], "no display name: the subject")

	auth := middleware.AuthenticatorFunc(func(_ context.Context, c middleware.Credentials) (middleware.Identity, error) {
		if c.Value != whAlice {
			return middleware.Identity{}, middleware.ErrInvalidCredentials
		}
		return middleware.Identity{Subject: "alice", Name: "Alice Liddell"}, nil
	})
	base := frameworktest.Serve(t, &framework.App{
		Environments: []environments.Environment{demo.Webhook()}, Registry: demo.Registry(), Authenticator: auth,
		Dispatcher: s.svc.Dispatcher,
	})
	named := (&stack{t: t, base: base}).do(http.MethodGet, "/me", whAlice, "")
	require.Equal(t, http.StatusOK, named.status, named.raw)
	require.Equal(t, "Alice Liddell", named.body["name"])
}
