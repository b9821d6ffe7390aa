package environments_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
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
	s := envtest.NewStack(t)
	me := s.Do(http.MethodGet, "/me", envtest.WhAlice, "")
	require.Equal(t, http.StatusOK, me.Status, me.Raw)
	require.Equal(t, "alice", me.Body["subject"])
	require.Equal(t, "alice", me.Body["name"], "no display name: the subject")

	auth := middleware.AuthenticatorFunc(func(_ context.Context, c middleware.Credentials) (middleware.Identity, error) {
		if c.Value != envtest.WhAlice {
			return middleware.Identity{}, middleware.ErrInvalidCredentials
		}
		return middleware.Identity{Subject: "alice", Name: "Alice Liddell"}, nil
	})
	base := frameworktest.Serve(t, &framework.App{
		Environments: []environments.Environment{demo.Webhook()}, Registry: demo.Registry(), Authenticator: auth,
		Dispatcher: s.Svc.Dispatcher,
	})
	named := (&envtest.Stack{T: t, Base: base}).Do(http.MethodGet, "/me", envtest.WhAlice, "")
	require.Equal(t, http.StatusOK, named.Status, named.Raw)
	require.Equal(t, "Alice Liddell", named.Body["name"])
}
