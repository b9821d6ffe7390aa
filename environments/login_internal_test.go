package environments

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestToLoginRedirectsOnlyRefusedPageRequests(t *testing.T) {
	t.Parallel()
	refuse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"status":401}`))
	})
	h := toLogin([]string{"/console", "/console/*"}, refuse)
	for _, c := range []struct {
		method, target string
		status         int
		location       string
	}{
		{http.MethodGet, "/console", http.StatusSeeOther, LoginPath + "?next=%2Fconsole"},
		{http.MethodGet, "/console/run/r1?tab=logs", http.StatusSeeOther, LoginPath + "?next=%2Fconsole%2Frun%2Fr1%3Ftab%3Dlogs"},
		{http.MethodHead, "/console/runs", http.StatusSeeOther, LoginPath + "?next=%2Fconsole%2Fruns"},
		{http.MethodPost, "/console/runs", http.StatusUnauthorized, ""}, // not a page load
		{http.MethodGet, "/consoles", http.StatusUnauthorized, ""},      // not under /console
		{http.MethodGet, "/runs", http.StatusUnauthorized, ""},          // the API
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.target, nil))
		require.Equal(t, c.status, rec.Code, c.target)
		require.Equal(t, c.location, rec.Header().Get("Location"), c.target)
		if c.status == http.StatusSeeOther {
			require.Empty(t, rec.Header().Get("WWW-Authenticate"))
			require.NotContains(t, rec.Body.String(), `"status"`)
		}
	}
}

func TestNextPageStaysLocal(t *testing.T) {
	t.Parallel()
	for target, want := range map[string]string{
		"/console/runs?x=1":   "/console/runs?x=1",
		"//evil.example/x":    "/",
		"/\\evil.example/x":   "/",
		"/team-a/console/run": "/team-a/console/run",
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RequestURI = target
		require.Equal(t, want, nextPage(r), target)
	}
}
