package framework_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

const staticToken = "static-token-0123456789"

// loginApp wires a service from vars (over TASKGATE_DATA_DIR dir) on a
// loopback listener whose address is TASKGATE_ADDR, and returns its URL.
func loginApp(t *testing.T, dir string, vars map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	vars = maps.Clone(vars)
	vars["TASKGATE_DATA_DIR"] = dir
	vars["TASKGATE_ADDR"] = ln.Addr().String()
	cfg, err := framework.ParseEnv(env(vars))
	require.NoError(t, err)
	cfg.MetricsAddr = ""
	svc, err := framework.FromEnv(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), demo.Registry(),
		webhook.MustNew(webhook.Config{Settings: environments.Settings{Name: "wh"}}))
	require.NoError(t, err)
	return frameworktest.ServeOn(t, svc.App, ln)
}

// browser is an HTTP client with a cookie jar that records every response
// of the redirects it follows.
type browser struct {
	*http.Client
	hops []*http.Response
}

func newBrowser(t *testing.T, follow bool) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	b := &browser{Client: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
	b.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		b.hops = append(b.hops, req.Response)
		if !follow {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return b
}

// sameOrigin posts a form as the page of base would.
func (b *browser) postForm(t *testing.T, base, path string, form url.Values) *http.Response {
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := b.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (b *browser) get(t *testing.T, u string) *http.Response {
	resp, err := b.Get(u)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// sessionCookie finds the session cookie a response set.
func sessionCookie(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "taskgate_session" {
			return c
		}
	}
	t.Fatalf("no session cookie in %v", resp.Header.Values("Set-Cookie"))
	return nil
}

// meWith calls GET /me with cookie and returns the status and subject.
func meWith(t *testing.T, base string, cookie *http.Cookie) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, base+"/me", nil)
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct{ Subject string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Subject
}

func requireSessionCookieAttributes(t *testing.T, c *http.Cookie, secret string) {
	t.Helper()
	require.True(t, middleware.IsSessionID(c.Value), "the cookie holds a session id")
	require.NotContains(t, c.Value, secret)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteLaxMode, c.SameSite)
	require.False(t, c.Secure, "an http external URL")
	require.Equal(t, "/", c.Path)
	require.InDelta(t, (12 * time.Hour).Seconds(), c.MaxAge, 5)
}

// TestOIDCSignInSignOut signs a browser in through a real OIDC issuer's
// authorization endpoint (code flow with PKCE), uses the session cookie on
// /me, in this App and in a second App sharing the SQLite file, then signs
// out: the old cookie stops working in both.
func TestOIDCSignInSignOut(t *testing.T) {
	t.Parallel()
	iss := frameworktest.NewIssuer(t)
	dir := t.TempDir()
	vars := map[string]string{
		"TASKGATE_OIDC_ISSUER":        iss.URL,
		"TASKGATE_OIDC_AUDIENCE":      iss.Audience,
		"TASKGATE_OIDC_CLIENT_ID":     "console",
		"TASKGATE_OIDC_CLIENT_SECRET": "console-secret",
		"TASKGATE_NODE_GPUS":          "T4:1",
	}
	base := loginApp(t, dir, vars)
	iss.AddLoginClient("console", "console-secret", base+"/auth/callback")
	iss.SignInAs(map[string]any{"sub": "alice", "name": "Alice", "groups": []string{"ml"}})

	b := newBrowser(t, true)
	resp := b.get(t, base+"/auth/login?next=/me")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var me struct{ Subject, Name string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&me))
	require.Equal(t, "alice", me.Subject)
	require.Equal(t, "Alice", me.Name)
	require.Equal(t, int64(1), iss.Authorizations())
	require.Zero(t, iss.PKCEFailures())

	// The hops: login → issuer → callback (sets the cookie) → /me.
	require.Len(t, b.hops, 3)
	authorize, err := url.Parse(b.hops[0].Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, iss.AuthorizeURL(), authorize.Scheme+"://"+authorize.Host+authorize.Path)
	q := authorize.Query()
	require.Equal(t, "S256", q.Get("code_challenge_method"))
	require.NotEmpty(t, q.Get("state"))
	require.NotEmpty(t, q.Get("nonce"))
	require.Equal(t, base+"/auth/callback", q.Get("redirect_uri"))
	callback := b.hops[2]
	require.Equal(t, "/me", callback.Header.Get("Location"))
	cookie := sessionCookie(t, callback)
	requireSessionCookieAttributes(t, cookie, "eyJ") // no JWT

	// A second App on the same SQLite file knows the session.
	vars["TASKGATE_ROLE"] = "api"
	second := loginApp(t, dir, vars)
	code, subject := meWith(t, second, cookie)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "alice", subject)

	// The session id is a cookie credential only.
	req, _ := http.NewRequest(http.MethodGet, base+"/me", nil)
	req.Header.Set("Authorization", "Bearer "+cookie.Value)
	r2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	r2.Body.Close()
	require.Equal(t, http.StatusUnauthorized, r2.StatusCode)

	// Sign out: the row goes, the cookie is cleared, and the browser lands
	// on a page that says so, not on at the issuer, whose own session
	// would sign it straight back in.
	b.hops = nil
	out := b.postForm(t, base, "/auth/logout", nil)
	require.Equal(t, http.StatusOK, out.StatusCode)
	require.Len(t, b.hops, 1, "one redirect, to the signed-out page")
	require.Equal(t, "/auth/login?signed_out=1", b.hops[0].Header.Get("Location"))
	page, _ := io.ReadAll(out.Body)
	require.Contains(t, string(page), "You are signed out")
	require.Contains(t, string(page), `href="/auth/login"`)
	require.Equal(t, int64(1), iss.Authorizations(), "not sent on to the issuer")
	require.Equal(t, http.StatusUnauthorized, b.get(t, base+"/me").StatusCode)
	for _, app := range []string{base, second} {
		code, _ := meWith(t, app, cookie)
		require.Equal(t, http.StatusUnauthorized, code, "the old cookie in %s", app)
	}
	// Its link signs in again through the issuer.
	require.Equal(t, http.StatusOK, b.get(t, base+"/auth/login?next=/me").StatusCode)
	require.Equal(t, int64(2), iss.Authorizations())
	require.Equal(t, http.StatusOK, b.get(t, base+"/me").StatusCode)
}

// TestOIDCCallbackRefusals: a callback that does not match the browser's
// sign-in is 400 problem+json, and no session starts.
func TestOIDCCallbackRefusals(t *testing.T) {
	t.Parallel()
	iss := frameworktest.NewIssuer(t)
	base := loginApp(t, t.TempDir(), map[string]string{
		"TASKGATE_OIDC_ISSUER":    iss.URL,
		"TASKGATE_OIDC_AUDIENCE":  iss.Audience,
		"TASKGATE_OIDC_CLIENT_ID": "public",
		"TASKGATE_NODE_GPUS":      "T4:1",
	})
	iss.AddLoginClient("public", "", base+"/auth/callback")
	alice := map[string]any{"sub": "alice"}
	iss.SignInAs(alice)

	// start begins a sign-in and returns the browser and the issuer URL
	// it was sent to.
	start := func(t *testing.T) (*browser, *url.URL) {
		b := newBrowser(t, false)
		resp := b.get(t, base+"/auth/login")
		require.Equal(t, http.StatusFound, resp.StatusCode)
		u, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		return b, u
	}
	// authorize visits the issuer and returns its callback URL.
	authorize := func(t *testing.T, b *browser, u *url.URL) string {
		resp := b.get(t, u.String())
		require.Equal(t, http.StatusFound, resp.StatusCode)
		return resp.Header.Get("Location")
	}
	refused := func(t *testing.T, b *browser, callback, detail string) {
		t.Helper()
		resp := b.get(t, callback)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
		body, _ := io.ReadAll(resp.Body)
		require.Contains(t, string(body), detail)
		for _, c := range resp.Cookies() {
			require.NotEqual(t, "taskgate_session", c.Name, "no session on a refused callback")
		}
	}

	t.Run("state mismatch", func(t *testing.T) {
		b, u := start(t)
		cb, _ := url.Parse(authorize(t, b, u))
		q := cb.Query()
		q.Set("state", "forged")
		cb.RawQuery = q.Encode()
		refused(t, b, cb.String(), "state does not match")
	})
	t.Run("no sign-in in this browser", func(t *testing.T) {
		b, u := start(t)
		cb := authorize(t, b, u)
		refused(t, newBrowser(t, false), cb, "no sign-in in progress")
	})
	t.Run("PKCE verifier does not match", func(t *testing.T) {
		b, u := start(t)
		q := u.Query()
		q.Set("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM") // another verifier's
		u.RawQuery = q.Encode()
		before := iss.PKCEFailures()
		refused(t, b, authorize(t, b, u), "refused the code")
		require.Equal(t, before+1, iss.PKCEFailures(), "the token endpoint checked the verifier")
	})
	t.Run("issuer refused", func(t *testing.T) {
		b, u := start(t)
		refused(t, b, base+"/auth/callback?error=access_denied&state="+u.Query().Get("state"), "access_denied")
	})
	t.Run("nonce mismatch", func(t *testing.T) {
		// Not parallel with the others: SignInAs is the issuer's.
		iss.SignInAs(map[string]any{"sub": "alice", "nonce": "someone-elses"})
		defer iss.SignInAs(alice)
		b, u := start(t)
		refused(t, b, authorize(t, b, u), "nonce does not match")
	})
	t.Run("code used twice", func(t *testing.T) {
		b, u := start(t)
		cb := authorize(t, b, u)
		resp := b.get(t, cb)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		// The flow cookie was used up: a replay of the callback is refused.
		refused(t, b, cb, "no sign-in in progress")
	})
}

// TestStaticTokenSignIn: without OIDC, /auth/login is a page that takes a
// token; a right token gets a session cookie (not the token), a wrong one
// the page again with 401, a cross-site post 403, and return paths to
// other origins are refused.
func TestStaticTokenSignIn(t *testing.T) {
	t.Parallel()
	base := loginApp(t, t.TempDir(), map[string]string{
		"TASKGATE_AUTH_TOKENS": staticToken + "=robot:ci",
		"TASKGATE_NODE_GPUS":   "T4:1",
	})
	b := newBrowser(t, false)

	page := b.get(t, base+"/auth/login?next=/me")
	require.Equal(t, http.StatusOK, page.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", page.Header.Get("Content-Type"))
	require.NotContains(t, page.Header.Get("Content-Security-Policy"), "unsafe-inline")
	require.Contains(t, page.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
	html, _ := io.ReadAll(page.Body)
	require.Contains(t, string(html), `<label for="token">`)
	require.Contains(t, string(html), `name="next" value="/me"`)
	require.NotContains(t, string(html), "<script")
	require.Equal(t, http.StatusOK, b.get(t, base+"/auth/style.css").StatusCode)
	out, _ := io.ReadAll(b.get(t, base+"/auth/login?signed_out=1").Body)
	require.Contains(t, string(out), "You are signed out.")
	require.Contains(t, string(out), `<label for="token">`, "the page a sign-out lands on takes a token")

	wrong := b.postForm(t, base, "/auth/login", url.Values{"token": {"not-the-token-at-all"}, "next": {"/me"}})
	require.Equal(t, http.StatusUnauthorized, wrong.StatusCode)
	require.Empty(t, wrong.Cookies())
	body, _ := io.ReadAll(wrong.Body)
	require.Contains(t, string(body), `role="alert"`)
	require.NotContains(t, string(body), "not-the-token-at-all", "the page never echoes a token")

	right := b.postForm(t, base, "/auth/login", url.Values{"token": {staticToken}, "next": {"/me"}})
	require.Equal(t, http.StatusSeeOther, right.StatusCode)
	require.Equal(t, "/me", right.Header.Get("Location"))
	cookie := sessionCookie(t, right)
	requireSessionCookieAttributes(t, cookie, staticToken)
	code, subject := meWith(t, base, cookie)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "robot", subject)

	for name, next := range map[string]string{
		"scheme-relative": "//evil.example/x",
		"backslash":       "/\\evil.example",
		"absolute":        "https://evil.example/",
		"javascript":      "javascript:alert(1)",
		"relative":        "me",
		"tab":             "/\t/evil.example",
		"escaped slash":   "/%2F/evil.example",
	} {
		resp := b.postForm(t, base, "/auth/login", url.Values{"token": {staticToken}, "next": {next}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, name)
		require.Equal(t, "/console", resp.Header.Get("Location"), name)
	}

	for name, h := range map[string][2]string{
		"cross-site fetch":  {"Sec-Fetch-Site", "cross-site"},
		"same-site sibling": {"Sec-Fetch-Site", "same-site"},
	} {
		req, _ := http.NewRequest(http.MethodPost, base+"/auth/login", strings.NewReader(url.Values{"token": {staticToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(h[0], h[1])
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode, name)
		require.Empty(t, resp.Cookies(), name)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/auth/login", strings.NewReader(url.Values{"token": {staticToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "another origin")

	// Guessing tokens is rate-limited per client.
	limited := false
	for range 12 {
		if b.postForm(t, base, "/auth/login", url.Values{"token": {"guess-guess-guess-guess"}}).StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	require.True(t, limited, "no 429 after a dozen wrong tokens")
}

// TestSessionsExpireAndRevoke drives middleware.Sessions over a real
// SQLite store with a fake clock: a session ends at its TTL, expired rows
// are purged at the next sign-in, a revoked one ends at once.
func TestSessionsExpireAndRevoke(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := middleware.NewSessions(middleware.SessionsConfig{Store: st, TTL: time.Hour, Now: func() time.Time { return now }})
	ctx := context.Background()
	cookie := func(v string) middleware.Credentials {
		return middleware.Credentials{Value: v, Source: middleware.SourceCookie, Name: "taskgate_session"}
	}

	first, expires, err := s.Create(ctx, middleware.Identity{Subject: "alice", Groups: []string{"ml"}})
	require.NoError(t, err)
	require.Equal(t, now.Add(time.Hour), expires)
	id, err := s.Authenticate(ctx, cookie(first))
	require.NoError(t, err)
	require.Equal(t, "alice", id.Subject)
	require.Equal(t, []string{"ml"}, id.Groups)
	require.Equal(t, expires, id.Expiry)

	now = now.Add(time.Hour)
	_, err = s.Authenticate(ctx, cookie(first))
	require.ErrorIs(t, err, middleware.ErrInvalidCredentials, "expired")

	second, _, err := s.Create(ctx, middleware.Identity{Subject: "bob"})
	require.NoError(t, err)
	_, found, err := st.LookupSession(ctx, sessionIDHash(first))
	require.NoError(t, err)
	require.False(t, found, "the expired row was purged")

	soon := now.Add(time.Minute)
	short, shortExpires, err := s.Create(ctx, middleware.Identity{Subject: "dave", Expiry: soon})
	require.NoError(t, err)
	require.Equal(t, soon, shortExpires, "a credential that ends sooner ends the session")
	id, err = s.Authenticate(ctx, cookie(short))
	require.NoError(t, err)
	require.Equal(t, soon, id.Expiry)
	_, _, err = s.Create(ctx, middleware.Identity{Subject: "erin", Expiry: now})
	require.Error(t, err, "an identity that has expired")

	require.NoError(t, s.Revoke(ctx, second))
	_, err = s.Authenticate(ctx, cookie(second))
	require.ErrorIs(t, err, middleware.ErrInvalidCredentials, "revoked")

	third, _, err := s.Create(ctx, middleware.Identity{Subject: "carol"})
	require.NoError(t, err)
	_, err = s.Authenticate(ctx, middleware.Credentials{Value: third, Source: middleware.SourceBearer})
	require.ErrorIs(t, err, middleware.ErrInvalidCredentials, "a session id is a cookie credential only")
	_, err = s.Authenticate(ctx, cookie(staticToken))
	require.ErrorIs(t, err, middleware.ErrInvalidCredentials)
}

func sessionIDHash(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

// TestStreamsEndWithTheSession: an event stream opened with a session
// cookie ends when the session does, rather than streaming a run's logs
// and events for as long as the run runs; what comes before is the
// stream's, without its end event (the run has not ended).
func TestStreamsEndWithTheSession(t *testing.T) {
	t.Parallel()
	base := loginApp(t, t.TempDir(), map[string]string{
		"TASKGATE_AUTH_TOKENS": staticToken + "=robot",
		"TASKGATE_SESSION_TTL": "2s",
		"TASKGATE_NODE_GPUS":   "T4:1",
	})
	req, _ := http.NewRequest(http.MethodPost, base+"/run-task/demo/development/sleep", strings.NewReader(`{"seconds":60}`))
	req.Header.Set("Authorization", "Bearer "+staticToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var run struct{ Name string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&run))
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	for _, stream := range []string{"/logs?follow=1", "/events"} {
		signIn := newBrowser(t, false).postForm(t, base, "/auth/login", url.Values{"token": {staticToken}, "next": {"/me"}})
		require.Equal(t, http.StatusSeeOther, signIn.StatusCode)
		cookie := sessionCookie(t, signIn)
		req, _ := http.NewRequest(http.MethodGet, base+"/run/"+run.Name+stream, nil)
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
		client := &http.Client{Timeout: 20 * time.Second} // the run sleeps a minute
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", stream, err)
		}
		require.Equal(t, http.StatusOK, resp.StatusCode, stream)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err, "%s: the stream outlived the session", stream)
		require.Contains(t, string(body), ": stream of run", stream)
		require.NotContains(t, string(body), "event: end", stream)
		code, _ := meWith(t, base, cookie)
		require.Equal(t, http.StatusUnauthorized, code, "the session is over")
	}
}

// TestTokenPageSessionEndsWithTheToken: a session started with a token on
// the sign-in page ends when the token does, not after the session TTL;
// a session of the OIDC code flow lasts the TTL (TestOIDCSignInSignOut).
func TestTokenPageSessionEndsWithTheToken(t *testing.T) {
	t.Parallel()
	iss := frameworktest.NewIssuer(t)
	base := loginApp(t, t.TempDir(), map[string]string{
		"TASKGATE_OIDC_ISSUER":   iss.URL,
		"TASKGATE_OIDC_AUDIENCE": iss.Audience,
		"TASKGATE_NODE_GPUS":     "T4:1",
	})
	token := iss.Mint(map[string]any{"sub": "alice", "exp": time.Now().Add(10 * time.Minute).Unix()})
	resp := newBrowser(t, false).postForm(t, base, "/auth/login", url.Values{"token": {token}, "next": {"/me"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	cookie := sessionCookie(t, resp)
	require.InDelta(t, (10 * time.Minute).Seconds(), cookie.MaxAge, 5, "the session ends with the token")
	code, subject := meWith(t, base, cookie)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "alice", subject)
}
