package oidctest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// codeTTL bounds how long an authorization code may wait for its exchange.
const codeTTL = time.Minute

// loginClient is a client of the authorization code flow.
type loginClient struct {
	secret      string // "" for a public client
	redirectURI string
}

// grant is an authorization code waiting for its exchange.
type grant struct {
	client, redirectURI, challenge, nonce string
	claims                                map[string]any
	expires                               time.Time
}

// AddLoginClient registers a client of the authorization code flow at
// /authorize and /token, with the one redirect URI it may use; secret ""
// makes it a public client (PKCE alone).
func (i *Issuer) AddLoginClient(id, secret, redirectURI string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.loginClients[id] = loginClient{secret: secret, redirectURI: redirectURI}
}

// SignInAs makes /authorize sign a user in at once, without its form:
// the claims of the ID tokens it leads to, over the defaults (sub
// DefaultSubject, aud the client, the nonce of the authorization request).
// A "nonce" here replaces the request's, which is how a test makes a token
// a verifier must refuse. nil brings the form back.
func (i *Issuer) SignInAs(claims map[string]any) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.user = maps.Clone(claims)
}

// AuthorizeURL returns the URL of the authorization endpoint.
func (i *Issuer) AuthorizeURL() string { return i.URL + "/authorize" }

// Authorizations returns how many codes /authorize issued.
func (i *Issuer) Authorizations() int64 { return i.authorizations.Load() }

// PKCEFailures returns how many code exchanges /token refused because the
// code_verifier did not match the code's challenge.
func (i *Issuer) PKCEFailures() int64 { return i.pkceFailures.Load() }

// serveAuthorize is the authorization endpoint (RFC 6749 section 4.1.1)
// with PKCE required (RFC 7636, S256 only). After SignInAs it signs that
// user in at once and redirects back with a code; otherwise (GET) it shows
// a sign-in form asking for a subject and groups, which it takes as a POST
// (a browser test types who signs in). A bad client or redirect URI gets
// 400 and no redirect, as the RFC asks.
func (i *Issuer) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
			return
		}
		q = r.PostForm
	}
	i.mu.Lock()
	c, known := i.loginClients[q.Get("client_id")]
	claims := maps.Clone(i.user)
	i.mu.Unlock()
	if !known || q.Get("redirect_uri") != c.redirectURI {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "unknown client or redirect_uri"})
		return
	}
	if r.Method == http.MethodPost {
		claims = map[string]any{"sub": q.Get("subject"), "name": q.Get("subject")}
		if g := strings.TrimSpace(q.Get("groups")); g != "" {
			claims["groups"] = strings.Split(g, ",")
		}
	} else if claims == nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// No form-action: the POST is answered with a redirect to the
		// client's origin, which form-action would block.
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		_ = authorizePage.Execute(w, q)
		return
	}
	back, _ := url.Parse(c.redirectURI)
	answer := back.Query()
	if s := q.Get("state"); s != "" {
		answer.Set("state", s)
	}
	switch {
	case q.Get("response_type") != "code":
		answer.Set("error", "unsupported_response_type")
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		answer.Set("error", "invalid_request")
	case claims["sub"] == "":
		answer.Set("error", "access_denied")
	default:
		code := rand.Text()
		i.mu.Lock()
		i.grants[code] = grant{
			client: q.Get("client_id"), redirectURI: c.redirectURI,
			challenge: q.Get("code_challenge"), nonce: q.Get("nonce"),
			claims: claims, expires: i.Now().Add(codeTTL),
		}
		i.mu.Unlock()
		i.authorizations.Add(1)
		answer.Set("code", code)
	}
	back.RawQuery = answer.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// authorizePage is the issuer's sign-in form; the request's parameters
// ride along as hidden fields.
var authorizePage = template.Must(template.New("authorize").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test issuer: sign in</title></head>
<body><main><h1>Test issuer</h1>
<form method="post" action="/authorize">
{{- range $k, $v := .}}{{if and (ne $k "subject") (ne $k "groups")}}
<input type="hidden" name="{{$k}}" value="{{index $v 0}}">{{end}}{{end}}
<label for="subject">Subject</label> <input id="subject" name="subject" required>
<label for="groups">Groups (comma-separated)</label> <input id="groups" name="groups">
<button type="submit" id="sign-in">Sign in</button>
</form></main></body></html>
`))

// exchangeCode answers the authorization code grant (RFC 6749 section
// 4.1.3): a code is used once, by its client, with its redirect URI and
// the verifier of its challenge.
func (i *Issuer) exchangeCode(w http.ResponseWriter, r *http.Request) {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	code := r.PostForm.Get("code")
	i.mu.Lock()
	c, known := i.loginClients[id]
	g, found := i.grants[code]
	delete(i.grants, code)
	i.mu.Unlock()
	if !known || subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	if !found || g.client != id || g.redirectURI != r.PostForm.Get("redirect_uri") || !i.Now().Before(g.expires) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(g.challenge)) != 1 {
		i.pkceFailures.Add(1)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "code_verifier does not match"})
		return
	}
	claims := map[string]any{"aud": id}
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	maps.Copy(claims, g.claims)
	access := map[string]any{"sub": claims["sub"]}
	if access["sub"] == nil {
		delete(access, "sub")
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": i.Mint(access),
		"id_token":     i.Mint(claims),
		"token_type":   "Bearer",
		"expires_in":   3600,
	})
}
