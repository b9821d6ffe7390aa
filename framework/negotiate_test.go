package framework_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/middleware"
)

const negotiateToken = "negotiate-token-0123456789abcdef"

// TestMiddlewareErrorsNegotiate: the errors written before huma (401 from
// auth, 413 from the body limit, 429 from the rate limit) follow the same
// negotiation as huma's own: a client that asks for application/json (fal's
// client reads a body only under the type it asked for) gets the problem
// body as application/json; one that accepts problem+json, or says
// nothing, gets problem+json.
func TestMiddlewareErrorsNegotiate(t *testing.T) {
	t.Parallel()
	auth := middleware.AuthenticatorFunc(func(_ context.Context, c middleware.Credentials) (middleware.Identity, error) {
		if c.Value != negotiateToken {
			return middleware.Identity{}, middleware.ErrInvalidCredentials
		}
		return middleware.Identity{Subject: "alice"}, nil
	})
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	base := frameworktest.Serve(t, &framework.App{
		Authenticator: auth,
		Environments: []environments.Environment{
			environments.MustAppEnvironment(environments.AppConfig{
				Settings: environments.Settings{Name: "small", PathPrefix: "/small",
					Limits: environments.Limits{MaxBodyBytes: 16}},
				Handler: ok,
			}),
			environments.MustAppEnvironment(environments.AppConfig{
				Settings: environments.Settings{Name: "tight", PathPrefix: "/tight",
					Limits: environments.Limits{RateLimit: 1, RateWindow: time.Hour}},
				Handler: ok,
			}),
		},
	})
	// The one request /tight allows in its window.
	first, _ := call(t, http.MethodGet, base+"/tight/x", negotiateToken, "", nil)
	require.Equal(t, http.StatusNoContent, first.StatusCode)

	cases := []struct {
		name, path, token, body string
		status                  int
	}{
		{"wrong key", "/small/x", "wrong", "", http.StatusUnauthorized},
		{"no key", "/small/x", "", "", http.StatusUnauthorized},
		{"body too large", "/small/x", negotiateToken, strings.Repeat("x", 17), http.StatusRequestEntityTooLarge},
		{"rate limited", "/tight/x", negotiateToken, "", http.StatusTooManyRequests},
	}
	accepts := []struct{ accept, want string }{
		{"application/json", "application/json"},
		{"application/problem+json", "application/problem+json"},
		{"", "application/problem+json"},
		{"application/json, application/problem+json", "application/problem+json"},
	}
	for _, tc := range cases {
		for _, a := range accepts {
			t.Run(tc.name+"/"+a.accept, func(t *testing.T) {
				h := http.Header{}
				if a.accept != "" {
					h.Set("Accept", a.accept)
				}
				resp, raw := call(t, http.MethodPost, base+tc.path, tc.token, tc.body, h)
				require.Equal(t, tc.status, resp.StatusCode, raw)
				require.Equal(t, a.want, resp.Header.Get("Content-Type"))
				require.Contains(t, resp.Header.Values("Vary"), "Accept")
				var body struct {
					Title  string `json:"title"`
					Status int    `json:"status"`
				}
				require.NoError(t, json.Unmarshal([]byte(raw), &body), raw)
				require.Equal(t, tc.status, body.Status)
				require.Equal(t, http.StatusText(tc.status), body.Title)
			})
		}
	}
}
