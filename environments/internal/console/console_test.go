package console_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/console"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/environments/webhook"
)

// cookie is the session cookie's default name (TASKGATE_AUTH_COOKIE).
const cookie = "taskgate_session"

// get sends GET path with the token in the session cookie, as a browser
// does; token "" sends none. Redirects are not followed.
func get(t testing.TB, base, path, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.AddCookie(&http.Cookie{Name: cookie, Value: token})
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

var pagePaths = []string{"/console", "/console/runs", "/console/tasks", "/console/nodes", "/console/queue", "/console/charts"}

func TestPagesSendBrowsersWithoutCredentialsToSignIn(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	for _, p := range append(pagePaths, "/console/run/r1?x=1", "/console/nope") {
		resp, _ := get(t, s.Base, p, "")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, p)
		require.Equal(t, environments.LoginPath+"?next="+strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(p, "/", "%2F"), "?", "%3F"), "=", "%3D"),
			resp.Header.Get("Location"), p)
	}
	// A refused credential is sent to sign in again too; the API still
	// answers 401, and the assets need no credential.
	resp, _ := get(t, s.Base, "/console/runs", "not-a-token-at-all")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, _ = get(t, s.Base, "/runs", "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = get(t, s.Base, "/console/static/console.js", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestPagesCarryTheCSP(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	for _, p := range append(pagePaths, "/console/static/console.js", "/console/static/console.css", "/console/nope") {
		resp, body := get(t, s.Base, p, envtest.WhAdmin)
		require.Contains(t, []int{http.StatusOK, http.StatusNotFound}, resp.StatusCode, p)
		csp := resp.Header.Get("Content-Security-Policy")
		require.Equal(t, console.CSP, csp, p)
		require.Contains(t, csp, "script-src 'self';")
		require.NotContains(t, csp, "unsafe-inline")
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), p)
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			require.NotRegexp(t, `<script>|<style|\sstyle=|\son[a-z]+=`, body, "%s has inline script or style", p)
		}
	}
	resp, _ := get(t, s.Base, "/console/nope", envtest.WhAdmin)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// external finds a URL with a scheme or a protocol-relative one, and CSS
// imports: anything a page could fetch from elsewhere.
var external = regexp.MustCompile(`(?i)\b(https?|wss?|ftp):|["'(=]\s*//[a-z0-9]|@import|url\(\s*['"]?[a-z]+:`)

func TestAssetsReachNoOtherOrigin(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	var seen int
	for _, p := range append(pagePaths, "/console/static/console.js", "/console/static/console.css") {
		resp, body := get(t, s.Base, p, envtest.WhAdmin)
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
		require.Empty(t, external.FindAllString(body, -1), p)
		for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(body, -1) {
			require.True(t, strings.HasPrefix(m[1], "/") && !strings.HasPrefix(m[1], "//") || strings.HasPrefix(m[1], "#"), "%s links to %s", p, m[1])
			seen++
		}
	}
	require.Greater(t, seen, 20, "the pages link their assets and each other")
	// The SVG namespace is a name, never fetched; nothing else is there.
	resp, body := get(t, s.Base, "/console/charts/gpus.svg", envtest.WhAdmin)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, []string{"http:"}, external.FindAllString(body, -1))
}

func TestRunPageIsTheAPIsDecision(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	r := s.Do(http.MethodPost, "/run-task/demo/development/echo", envtest.WhAlice, `{"message":"hi"}`)
	require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
	name := r.Body["name"].(string)
	for _, c := range []struct {
		token string
		want  int
	}{
		{envtest.WhAlice, http.StatusOK},     // the owner
		{envtest.WhAdmin, http.StatusOK},     // the admin group
		{envtest.WhBob, http.StatusNotFound}, // anyone else: as GET /run/{name}
	} {
		resp, body := get(t, s.Base, "/console/run/"+name, c.token)
		require.Equal(t, c.want, resp.StatusCode, c.token)
		require.Equal(t, c.want, s.Do(http.MethodGet, "/run/"+name, c.token, "").Status)
		if c.want == http.StatusOK {
			require.Contains(t, body, `data-run="`+name+`"`)
		} else {
			require.NotContains(t, body, name)
		}
	}
	resp, _ := get(t, s.Base, "/console/run/no-such-run", envtest.WhAdmin)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestChartsAreForThoseWhoSeeTheQueue(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	// The sampler follows events once the console was opened.
	resp, _ := get(t, s.Base, "/console/charts", envtest.WhAdmin)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	r := s.Do(http.MethodPost, "/run-task/demo/development/echo", envtest.WhAlice, `{"message":"hi"}`, "Prefer", "wait=10")
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	for _, chart := range []string{"runs", "queue", "gpus"} {
		resp, _ := get(t, s.Base, "/console/charts/"+chart+".svg", envtest.WhBob)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, chart) // as GET /queue
		resp, body := get(t, s.Base, "/console/charts/"+chart+".svg", envtest.WhAdmin)
		require.Equal(t, http.StatusOK, resp.StatusCode, chart)
		require.Equal(t, "image/svg+xml", resp.Header.Get("Content-Type"))
		require.True(t, strings.HasPrefix(body, "<svg ") && strings.HasSuffix(body, "</svg>"), body)
	}
	// The echo run ended after the sampler started: the runs chart
	// counts it, and the GPU chart knows the declared A100s.
	require.Eventually(t, func() bool {
		_, body := get(t, s.Base, "/console/charts/runs.svg", envtest.WhAdmin)
		return strings.Contains(body, "1 runs ended in the last hour.") && strings.Contains(body, "<title>1 succeeded</title>")
	}, 5e9, 2e7)
	_, body := get(t, s.Base, "/console/charts/gpus.svg", envtest.WhAdmin)
	require.Contains(t, body, "0 of 2")
	resp, _ = get(t, s.Base, "/console/charts/other.svg", envtest.WhAdmin)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestActionsPassTheCSRFCheck(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	r := s.Do(http.MethodPost, "/run-task/demo/development/sleep", envtest.WhAlice, `{"seconds":60}`)
	require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
	name := r.Body["name"].(string)
	abort := func(headers ...string) int {
		req, err := http.NewRequest(http.MethodPost, s.Base+"/run/"+name+"/abort", nil)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: cookie, Value: envtest.WhAlice})
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		return envtest.RoundTrip(t, req).Status
	}
	// What a cross-site form would send; then what the console sends.
	require.Equal(t, http.StatusForbidden, abort("Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"))
	require.Equal(t, http.StatusAccepted, abort("X-CSRF-Token", "1", "Sec-Fetch-Site", "same-origin"))
}

func TestConsoleTurnsOff(t *testing.T) {
	t.Parallel()
	off := webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "off"}, Groups: []string{webhook.GroupAll}, NoConsole: true,
	})
	for name, s := range map[string]*envtest.Stack{
		"webhook.Config.NoConsole": envtest.NewStack(t, off),
		"TASKGATE_CONSOLE=off":     envtest.NewStackEnv(t, map[string]string{"TASKGATE_CONSOLE": "off"}),
	} {
		resp, _ := get(t, s.Base, "/console/runs", envtest.WhAdmin)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, name)
		resp, _ = get(t, s.Base, "/console/runs", "")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, name) // no page, no sign-in
		resp, _ = get(t, s.Base, "/console/static/console.js", "")
		require.NotEqual(t, http.StatusOK, resp.StatusCode, name)
	}
}

func TestConsoleUnderAPathPrefix(t *testing.T) {
	t.Parallel()
	team := webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "team-a", PathPrefix: "/team-a"}, Groups: []string{webhook.GroupAll},
	})
	s := envtest.NewStack(t, team)
	resp, body := get(t, s.Base, "/team-a/console/runs", envtest.WhAlice)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `data-api="/team-a" data-base="/team-a/console"`)
	asset := regexp.MustCompile(`src="(/team-a/console/static/console\.js\?v=[0-9a-f]+)"`).FindStringSubmatch(body)
	require.NotNil(t, asset, body)
	resp, _ = get(t, s.Base, asset[1], "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = get(t, s.Base, "/team-a/console/queue?x=1", "")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, environments.LoginPath+"?next=%2Fteam-a%2Fconsole%2Fqueue%3Fx%3D1", resp.Header.Get("Location"))
}
