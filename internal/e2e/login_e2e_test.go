//go:build e2e

package e2e

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/middleware/oidctest"
)

// quickstartApp serves, in process, the quickstart's service (its
// registry and webhook, wired by FromEnv) with vars over a fresh data
// folder, on loopback; it returns the URL and the development token when
// vars configure no credentials.
func quickstartApp(t *testing.T, vars map[string]string) (base, devToken string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	vars = maps.Clone(vars)
	vars["TASKGATE_DATA_DIR"] = t.TempDir()
	vars["TASKGATE_ADDR"] = ln.Addr().String()
	cfg, err := framework.ParseEnv(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.MetricsAddr = ""
	svc, err := framework.FromEnv(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), demo.Registry(), demo.Webhook())
	if err != nil {
		t.Fatal(err)
	}
	return frameworktest.ServeOn(t, svc.App, ln), svc.DevToken
}

// waitLocation waits until the tab's URL is want. It asks from Go, as a
// poll inside the page would die with the page at each navigation.
func waitLocation(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	var loc string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if l, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
			if loc = l; loc == want {
				// Let the page finish loading before it is read.
				if err := chromedp.Do(ctx, chromedp.WaitReady("body")); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
	}
	t.Fatalf("waiting for %s, at %s", want, loc)
}

// sessionCookie returns the session cookie the browser holds for base.
func sessionCookie(t *testing.T, ctx context.Context, base string) (*network.Cookie, bool) {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	if err != nil {
		t.Fatalf("cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == middleware.DefaultCookieName {
			return c, true
		}
	}
	return nil, false
}

func requireSessionCookie(t *testing.T, ctx context.Context, base, notValue string) {
	t.Helper()
	c, ok := sessionCookie(t, ctx, base)
	switch {
	case !ok:
		t.Fatal("no session cookie after signing in")
	case !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax || c.Path != "/":
		t.Errorf("cookie attributes: httpOnly %v, sameSite %s, path %s", c.HTTPOnly, c.SameSite, c.Path)
	case !middleware.IsSessionID(c.Value) || strings.Contains(c.Value, notValue):
		t.Errorf("the cookie does not hold a session id")
	}
	if left := time.Until(time.Unix(int64(c.Expires), 0)); left < 11*time.Hour || left > 13*time.Hour {
		t.Errorf("cookie expires in %v, want about 12h", left)
	}
}

// TestSignInThroughIssuerInBrowser signs in in Chromium through the test
// issuer's real authorization endpoint (its form, then the code flow with
// PKCE), reads /me as the user, then signs out with the sign-out page's
// button and is sent to sign in again, without the cookie.
func TestSignInThroughIssuerInBrowser(t *testing.T) {
	ctx := newChromium(t, 90*time.Second)
	iss := oidctest.NewIssuer(t)
	base, _ := quickstartApp(t, map[string]string{
		"TASKGATE_OIDC_ISSUER":    iss.URL,
		"TASKGATE_OIDC_AUDIENCE":  iss.Audience,
		"TASKGATE_OIDC_CLIENT_ID": "console",
	})
	iss.AddLoginClient("console", "", base+"/auth/callback")
	pages := watch(t, ctx)

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/auth/login?next=/me"), chromedp.WaitVisible("#subject")); err != nil {
		t.Fatalf("to the issuer's sign-in: %v", err)
	}
	saveScreenshot(t, ctx, "login-issuer")
	if err := chromedp.Do(ctx, chromedp.SendKeys("#subject", "alice"), chromedp.SendKeys("#groups", "ml"), chromedp.Click("#sign-in")); err != nil {
		t.Fatalf("sign in at the issuer: %v", err)
	}
	waitLocation(t, ctx, base+"/me")
	text, err := chromedp.Run(ctx, chromedp.Text("body"))
	if err != nil || !strings.Contains(text, `"subject":"alice"`) {
		t.Fatalf("/me after signing in: %q %v", text, err)
	}
	saveScreenshot(t, ctx, "login-oidc-me")
	requireSessionCookie(t, ctx, base, "eyJ")

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/auth/logout"), chromedp.WaitVisible("button[type=submit]"), chromedp.Click("button[type=submit]")); err != nil {
		t.Fatalf("sign out: %v", err)
	}
	// The browser lands on a page that says it is signed out, not on at
	// the issuer (whose own session would sign it straight back in); its
	// link goes to the issuer's form.
	if err := chromedp.Do(ctx, chromedp.WaitVisible("#sign-in-again")); err != nil {
		t.Fatalf("after signing out: %v", err)
	}
	if _, ok := sessionCookie(t, ctx, base); ok {
		t.Error("the session cookie outlived the sign-out")
	}
	saveScreenshot(t, ctx, "logout")
	if iss.Authorizations() != 1 {
		t.Errorf("%d authorizations, want 1", iss.Authorizations())
	}
	if err := chromedp.Do(ctx, chromedp.Click("#sign-in-again"), chromedp.WaitVisible("#subject")); err != nil {
		t.Fatalf("sign in again: %v", err)
	}
	pages.onlyOrigins(t, base, iss.URL)
}

// TestSignInWithTokenInBrowser signs in on the quickstart's token page: a
// wrong token shows the page again with its alert, the development token
// leads to /me as "dev" with a session cookie that is not the token. The
// page loads nothing from another origin and breaks no CSP rule.
func TestSignInWithTokenInBrowser(t *testing.T) {
	ctx := newChromium(t, 90*time.Second)
	base, token := quickstartApp(t, map[string]string{})
	if token == "" {
		t.Fatal("the quickstart made no development token")
	}
	pages := watch(t, ctx)

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/auth/login?next=/me"), chromedp.WaitVisible("#token")); err != nil {
		t.Fatalf("sign-in page: %v", err)
	}
	label, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("token").labels[0].textContent`))
	if err != nil || label != "Access token" {
		t.Errorf("the token field's label: %q %v", label, err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys("#token", "tg_dev_wrong-wrong-wrong"), chromedp.Click("button[type=submit]"), chromedp.WaitVisible("[role=alert]")); err != nil {
		t.Fatalf("wrong token: %v", err)
	}
	saveScreenshot(t, ctx, "login-token-refused")
	// The page shown again is empty: it never echoes a token.
	if err := chromedp.Do(ctx, chromedp.SendKeys("#token", token), chromedp.Click("button[type=submit]")); err != nil {
		t.Fatalf("right token: %v", err)
	}
	waitLocation(t, ctx, base+"/me")
	text, err := chromedp.Run(ctx, chromedp.Text("body"))
	if err != nil || !strings.Contains(text, `"subject":"dev"`) {
		t.Fatalf("/me after signing in: %q %v", text, err)
	}
	requireSessionCookie(t, ctx, base, token)
	saveScreenshot(t, ctx, "login-token-me")
	pages.onlyOrigins(t, base)
}
