package login

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/middleware"
)

// flowTTL bounds how long a sign-in at the issuer may take.
const flowTTL = 10 * time.Minute

// oidcFlow is the authorization code flow with PKCE, state and nonce.
//
// One random secret per sign-in, kept in the browser's flow cookie
// (HttpOnly, SameSite=Lax, ten minutes, path /auth/), yields the state,
// the nonce and the PKCE verifier as HMACs of it under three labels. The
// callback recomputes them from the cookie: the state must equal the one
// the issuer sent back, the ID token must carry the nonce, and the token
// endpoint checks the verifier against the challenge. So the flow needs
// no key shared between processes nor a row in the store, and the
// callback may land on any process; a cookie a third party planted would
// pass a signature check as well (it could come from this server), so a
// signed cookie would add nothing. Neither the state nor the challenge in
// the issuer's URL reveals the secret, the nonce or the verifier.
type oidcFlow struct {
	oauth    oauth2.Config
	verifier *middleware.OIDC
	client   *http.Client
	logger   *slog.Logger
}

func newOIDCFlow(ctx context.Context, c OIDCConfig, redirectURL string, logger *slog.Logger) (*oidcFlow, error) {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, c.HTTPClient), c.Issuer)
	if err != nil {
		return nil, fmt.Errorf("login: oidc discovery: %w", err)
	}
	endpoint := p.Endpoint()
	if c.ClientSecret == "" {
		// A public client names itself in the form; PKCE stands in for
		// the secret.
		endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	// The ID token is checked as any bearer JWT is (signature, algorithm,
	// issuer, audience = the client, expiry, subject), by the same code,
	// and the identity read from its claims the same way.
	v, err := middleware.NewOIDC(ctx, middleware.OIDCConfig{
		Issuer: c.Issuer, Audience: c.ClientID, HTTPClient: c.HTTPClient,
		GroupsClaim: c.GroupsClaim, Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	return &oidcFlow{
		oauth: oauth2.Config{
			ClientID: c.ClientID, ClientSecret: c.ClientSecret,
			Endpoint: endpoint, RedirectURL: redirectURL, Scopes: c.Scopes,
		},
		verifier: v,
		client:   c.HTTPClient,
		logger:   logger,
	}, nil
}

// flowValues are what one sign-in's secret yields.
type flowValues struct{ state, nonce, verifier string }

func deriveFlow(secret []byte) flowValues {
	mac := func(label string) string {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(label))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	// 32 bytes of base64url are 43 characters, the shortest PKCE verifier
	// (RFC 7636 section 4.1).
	return flowValues{state: mac("taskgate state"), nonce: mac("taskgate nonce"), verifier: mac("taskgate pkce")}
}

// start sends the browser to the issuer's authorization endpoint.
func (f *oidcFlow) start(w http.ResponseWriter, r *http.Request, cookie func(value string, maxAge int) *http.Cookie, next string) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	v := deriveFlow(secret)
	value := base64.RawURLEncoding.EncodeToString(secret) + "." + base64.RawURLEncoding.EncodeToString([]byte(next))
	http.SetCookie(w, cookie(value, int(flowTTL/time.Second)))
	u := f.oauth.AuthCodeURL(v.state, oidc.Nonce(v.nonce), oauth2.S256ChallengeOption(v.verifier))
	http.Redirect(w, r, u, http.StatusFound)
}

// callbackError is a refused callback: its status and the detail of the
// problem+json the browser gets.
type callbackError struct {
	status int
	detail string
}

func (e *callbackError) Error() string { return e.detail }

func badCallback(detail string) error {
	return &callbackError{status: http.StatusBadRequest, detail: detail}
}

// finish checks the issuer's answer against the flow cookie, exchanges
// the code with the PKCE verifier, verifies the ID token and its nonce,
// and returns the signed-in identity and where to go next.
func (f *oidcFlow) finish(r *http.Request, flowCookie string) (middleware.Identity, string, error) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return middleware.Identity{}, "", badCallback("the identity provider refused the sign-in: " + printable(e))
	}
	secret, next, ok := parseFlowCookie(flowCookie)
	if !ok {
		return middleware.Identity{}, "", badCallback("no sign-in in progress in this browser, or it took more than ten minutes")
	}
	v := deriveFlow(secret)
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(v.state)) != 1 {
		return middleware.Identity{}, "", badCallback("state does not match this browser's sign-in")
	}
	code := q.Get("code")
	if code == "" {
		return middleware.Identity{}, "", badCallback("no authorization code")
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, f.client)
	tok, err := f.oauth.Exchange(ctx, code, oauth2.VerifierOption(v.verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode/100 == 4 {
			return middleware.Identity{}, "", badCallback("the identity provider refused the code: " + printable(re.ErrorCode))
		}
		f.logger.WarnContext(r.Context(), "token exchange failed", "err", err)
		return middleware.Identity{}, "", &callbackError{status: http.StatusBadGateway, detail: "the identity provider did not answer"}
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return middleware.Identity{}, "", &callbackError{status: http.StatusBadGateway, detail: "the identity provider sent no ID token"}
	}
	id, err := f.verifier.Authenticate(r.Context(), middleware.Credentials{Scheme: "Bearer", Value: raw, Source: middleware.SourceBearer})
	if err != nil {
		f.logger.InfoContext(r.Context(), "ID token refused", "error", err.Error())
		return middleware.Identity{}, "", badCallback("the ID token was refused")
	}
	nonce, _ := id.Claims["nonce"].(string)
	if subtle.ConstantTimeCompare([]byte(nonce), []byte(v.nonce)) != 1 {
		return middleware.Identity{}, "", badCallback("the ID token's nonce does not match this browser's sign-in")
	}
	// The session keeps who, not the token, and replaces it: the ID
	// token's exp does not end the session (the TTL does).
	id.Claims, id.Expiry = nil, time.Time{}
	return id, next, nil
}

func parseFlowCookie(v string) (secret []byte, next string, ok bool) {
	s, n, found := strings.Cut(v, ".")
	if !found {
		return nil, "", false
	}
	secret, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(secret) != 32 {
		return nil, "", false
	}
	nb, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil {
		return nil, "", false
	}
	next, ok = safeNext(string(nb))
	return secret, next, ok
}

// printable keeps an issuer's error code fit to show: up to 64 characters
// of the RFC 6749 error code set.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 0x20 && r <= 0x7e && r != '"' && r != '\\' {
			return r
		}
		return -1
	}, s)
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// callback finishes a sign-in at the issuer.
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	if h.oidc == nil {
		problem.Write(w, r, http.StatusNotFound, "no identity provider is configured")
		return
	}
	var flow string
	if c, err := r.Cookie(h.flowCookieName()); err == nil {
		flow = c.Value
	}
	// The flow is used up whatever the outcome.
	http.SetCookie(w, h.flowCookie("", -1))
	id, next, err := h.oidc.finish(r, flow)
	if err != nil {
		var ce *callbackError
		if !errors.As(err, &ce) {
			ce = &callbackError{status: http.StatusBadGateway, detail: "sign-in failed"}
		}
		problem.Write(w, r, ce.status, ce.detail)
		return
	}
	h.startSession(w, r, id, next)
}

func (h *Handler) flowCookieName() string { return h.cfg.Cookie + "_flow" }

// flowCookie is the cookie of a sign-in under way; maxAge -1 deletes it.
func (h *Handler) flowCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: h.flowCookieName(), Value: value, Path: "/auth/", MaxAge: maxAge,
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	}
}
