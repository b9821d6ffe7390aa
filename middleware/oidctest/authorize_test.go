package oidctest_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/taskgate/taskgate/middleware/oidctest"
)

// TestAuthorizationCodeFlowWithPKCE signs in through the form of
// /authorize, then exchanges the code at /token: a wrong verifier is
// refused (and counted), the right one gets an ID token that go-oidc
// verifies, carrying the nonce and the typed subject; a code works once.
func TestAuthorizationCodeFlowWithPKCE(t *testing.T) {
	t.Parallel()
	iss := oidctest.NewIssuer(t)
	const redirect = "http://127.0.0.1:1/auth/callback"
	iss.AddLoginClient("app", "", redirect)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	params := url.Values{
		"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {redirect},
		"state": {"st"}, "nonce": {"n0nce"}, "scope": {"openid"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	form, err := noFollow.Get(iss.AuthorizeURL() + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(form.Body)
	form.Body.Close()
	if form.StatusCode != http.StatusOK || !strings.Contains(string(page), `<label for="subject">`) {
		t.Fatalf("authorize form: %d %s", form.StatusCode, page)
	}
	params.Set("subject", "alice")
	params.Set("groups", "ml,admins")
	resp, err := noFollow.PostForm(iss.AuthorizeURL(), params)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, _ := url.Parse(resp.Header.Get("Location"))
	code := back.Query().Get("code")
	if resp.StatusCode != http.StatusFound || code == "" || back.Query().Get("state") != "st" {
		t.Fatalf("authorize: %d %s", resp.StatusCode, back)
	}

	exchange := func(verifier string) (int, map[string]any) {
		resp, err := http.PostForm(iss.TokenURL(), url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"app"},
			"redirect_uri": {redirect}, "code_verifier": {verifier},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if status, _ := exchange(strings.Repeat("w", 43)); status != http.StatusBadRequest || iss.PKCEFailures() != 1 {
		t.Fatalf("wrong verifier: %d, %d failures", status, iss.PKCEFailures())
	}
	// The failed exchange used the code up, as a stolen code's should be.
	if status, _ := exchange(verifier); status != http.StatusBadRequest {
		t.Fatalf("a used code was exchanged: %d", status)
	}

	// Again, this time with the right verifier.
	iss.SignInAs(map[string]any{"sub": "bob"})
	resp, err = noFollow.Get(iss.AuthorizeURL() + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, _ = url.Parse(resp.Header.Get("Location"))
	code = back.Query().Get("code")
	status, body := exchange(verifier)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, body)
	}
	ctx := oidc.ClientContext(t.Context(), iss.Client())
	p, err := oidc.NewProvider(ctx, iss.URL)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := p.VerifierContext(ctx, &oidc.Config{ClientID: "app"}).Verify(ctx, body["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "bob" || idt.Nonce != "n0nce" {
		t.Fatalf("ID token: sub %q nonce %q", idt.Subject, idt.Nonce)
	}
	if p.Endpoint().AuthURL != iss.AuthorizeURL() {
		t.Fatalf("discovery names %q", p.Endpoint().AuthURL)
	}
}
