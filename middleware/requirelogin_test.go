package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware"
)

// TestRequireLoginSendsBrowsersToSignIn: behind an optional passthrough, a
// page GET without credentials is sent to /auth/login with the page as
// its return path (the path as requested, before a router stripped a
// prefix); another method is 401; a verified caller goes through.
func TestRequireLoginSendsBrowsersToSignIn(t *testing.T) {
	t.Parallel()
	tokens, err := middleware.ParseStaticTokens("tok-0123456789abcdef=alice")
	require.NoError(t, err)
	page := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	h := middleware.Passthrough(middleware.PassthroughConfig{Authenticator: tokens, Optional: true})(
		http.StripPrefix("/team", middleware.RequireLogin("")(page)))

	for _, tc := range []struct {
		method, target, token string
		status                int
		location              string
	}{
		{http.MethodGet, "/team/console/runs?phase=failed", "", http.StatusSeeOther, "/auth/login?next=%2Fteam%2Fconsole%2Fruns%3Fphase%3Dfailed"},
		{http.MethodHead, "/team/console", "", http.StatusSeeOther, "/auth/login?next=%2Fteam%2Fconsole"},
		{http.MethodPost, "/team/console", "", http.StatusUnauthorized, ""},
		{http.MethodGet, "/team/console", "tok-0123456789abcdef", http.StatusOK, ""},
	} {
		req := httptest.NewRequest(tc.method, tc.target, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, tc.status, rec.Code, tc.method+" "+tc.target)
		require.Equal(t, tc.location, rec.Header().Get("Location"), tc.method+" "+tc.target)
	}
	require.Equal(t, "/auth/login", middleware.LoginURL("/auth/login", ""))
	require.Panics(t, func() { middleware.RequireLogin("//evil.example") })
}
