package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/middleware/login"
	"github.com/taskgate/taskgate/tasks/store"
)

// LoginConfig is the App's browser sign-in at /auth/login, /auth/callback
// and /auth/logout (package middleware/login): a session cookie that the
// passthrough reads like any cookie credential, in exchange for a sign-in
// at an OpenID Connect issuer (when OIDCClientID is set) or for a token
// pasted on a sign-in page. The cookie holds a random session id; the
// store keeps the session, so signing out ends it in every process. It is
// off while Sessions is nil; FromEnv turns it on.
type LoginConfig struct {
	// Sessions keeps the sessions: the App's store (every tasks/store
	// Store is one).
	Sessions middleware.SessionStore
	// Cookie is the session cookie's name; it must be the one the App's
	// cookie extractor reads. Default middleware.DefaultCookieName.
	Cookie string
	// TTL bounds a session's life; default middleware.DefaultSessionTTL
	// (12 h).
	TTL time.Duration
	// ExternalURL is the origin browsers reach the service at; default
	// "http://" + Addr. The OIDC redirect URI is ExternalURL +
	// "/auth/callback"; an https URL makes the cookies Secure.
	ExternalURL string
	// Home is where a sign-in without a return path lands; default
	// "/console".
	Home string
	// OIDCIssuer, OIDCClientID and OIDCClientSecret (empty for a public
	// client) sign browsers in through the issuer; without a client id
	// the sign-in page takes a token, checked by App.Authenticator.
	OIDCIssuer       string
	OIDCClientID     string
	OIDCClientSecret string
	// OIDCScopes default to openid, profile and email.
	OIDCScopes []string
	// HTTPClient talks to the issuer; default one with a 10 s timeout.
	HTTPClient *http.Client
}

// loginHandler builds the sign-in handler and the Sessions the
// passthrough puts in front of App.Authenticator; nil, nil when Login is
// off.
func (a *App) loginHandler() (http.Handler, *middleware.Sessions, error) {
	c := a.Login
	if c.Sessions == nil {
		return nil, nil, nil
	}
	if c.TTL < 0 {
		return nil, nil, errors.New("framework: App.Login.TTL must not be negative")
	}
	if c.ExternalURL == "" {
		c.ExternalURL = defaultExternalURL(a.Addr)
	}
	if c.Home == "" {
		c.Home = "/console"
	}
	sessions := middleware.NewSessions(middleware.SessionsConfig{Store: c.Sessions, TTL: c.TTL})
	cfg := login.Config{
		Sessions:      sessions,
		Authenticator: a.Authenticator,
		Cookie:        c.Cookie,
		ExternalURL:   c.ExternalURL,
		Home:          c.Home,
		Logger:        a.Logger,
	}
	if cfg.Authenticator == nil {
		cfg.Authenticator = middleware.Chain() // refuses every token
	}
	if c.OIDCClientID != "" {
		if c.OIDCIssuer == "" {
			return nil, nil, errors.New("framework: App.Login.OIDCClientID needs OIDCIssuer")
		}
		cfg.OIDC = &login.OIDCConfig{
			Issuer: c.OIDCIssuer, ClientID: c.OIDCClientID, ClientSecret: c.OIDCClientSecret,
			Scopes: c.OIDCScopes, HTTPClient: c.HTTPClient,
		}
	}
	// Discovery runs once here, so that a wrong issuer fails at start;
	// Handler has no context of its own.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := login.New(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("framework: App.Login: %w", err)
	}
	return h, sessions, nil
}

// defaultExternalURL is "http://" + addr, with a listen address's empty
// or unspecified host made localhost, which a browser can reach.
func defaultExternalURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Every store keeps the sessions.
var _ middleware.SessionStore = store.Store(nil)
