package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/middleware"
)

// Paths the Handler serves, from the root of the origin.
const (
	LoginPath    = middleware.DefaultLoginPath
	CallbackPath = "/auth/callback"
	LogoutPath   = "/auth/logout"
)

// Config configures New. Sessions and ExternalURL are required, and
// Authenticator unless OIDC is set.
type Config struct {
	// Sessions start and end the browser sessions.
	Sessions *middleware.Sessions
	// Authenticator verifies the token pasted on the sign-in page (when
	// OIDC is nil): the service's own, without Sessions in front.
	Authenticator middleware.Authenticator
	// Cookie is the session cookie's name, the one the passthrough's
	// CookieExtractor reads; default middleware.DefaultCookieName.
	Cookie string
	// ExternalURL is the origin browsers reach the service at
	// ("https://gpu.example.com"): the redirect URI is ExternalURL +
	// CallbackPath, and an https origin makes the cookies Secure. It must
	// be an origin, with no path.
	ExternalURL string
	// Home is where a sign-in without a return path lands; default "/".
	Home string
	// OIDC, when set, signs browsers in through an OpenID Connect issuer
	// (authorization code flow with PKCE); nil serves a page that takes a
	// token instead.
	OIDC *OIDCConfig
	// SignInLimit bounds the tokens one client IP may try on the sign-in
	// page per minute; default 10.
	SignInLimit int
	// Logger receives failed sign-ins at info and failures of the store or
	// issuer at warn, never with a token. Default slog.Default().
	Logger *slog.Logger
}

// OIDCConfig is the OpenID Connect client of the sign-in.
type OIDCConfig struct {
	// Issuer is the issuer URL; its discovery document names the
	// authorization and token endpoints.
	Issuer string
	// ClientID is the client registered at the issuer, and the audience
	// of its ID tokens.
	ClientID string
	// ClientSecret is empty for a public client (PKCE alone).
	ClientSecret string
	// Scopes asked for; default openid, profile and email.
	Scopes []string
	// GroupsClaim names the ID token claim holding the groups; default
	// "groups".
	GroupsClaim string
	// HTTPClient talks to the issuer; default one with a 10 s timeout.
	HTTPClient *http.Client
}

func (c *Config) validate() error {
	switch {
	case c.Sessions == nil:
		return errors.New("login: Config.Sessions is required")
	case c.OIDC == nil && c.Authenticator == nil:
		return errors.New("login: Config.Authenticator is required without OIDC")
	}
	u, err := url.Parse(c.ExternalURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("login: ExternalURL %q is not an origin (http[s]://host[:port])", c.ExternalURL)
	}
	c.ExternalURL = u.Scheme + "://" + u.Host
	if c.Cookie == "" {
		c.Cookie = middleware.DefaultCookieName
	}
	if c.Home == "" {
		c.Home = "/"
	}
	if _, ok := safeNext(c.Home); !ok {
		return fmt.Errorf("login: Home %q is not a path of this origin", c.Home)
	}
	if c.SignInLimit < 0 {
		return fmt.Errorf("login: SignInLimit %d is negative", c.SignInLimit)
	}
	if c.SignInLimit == 0 {
		c.SignInLimit = 10
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if o := c.OIDC; o != nil {
		if o.Issuer == "" || o.ClientID == "" {
			return errors.New("login: OIDC.Issuer and OIDC.ClientID are required")
		}
		if len(o.Scopes) == 0 {
			o.Scopes = []string{"openid", "profile", "email"}
		}
		if o.HTTPClient == nil {
			o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
		}
	}
	return nil
}

// Handler serves the browser sign-in: LoginPath (GET: the sign-in page,
// or off to the issuer with OIDC; POST: a token from the page),
// CallbackPath (the issuer's answer) and LogoutPath (GET: a page with a
// sign-out button; POST: end the session). Mount it at the root of the
// origin.
type Handler struct {
	cfg    Config
	secure bool
	oidc   *oidcFlow // nil without OIDC
	mux    http.Handler
}

// New returns the Handler of cfg. With OIDC it runs the issuer's
// discovery, so that a wrong issuer fails at start.
func New(ctx context.Context, cfg Config) (*Handler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, secure: strings.HasPrefix(cfg.ExternalURL, "https://")}
	if cfg.OIDC != nil {
		f, err := newOIDCFlow(ctx, *cfg.OIDC, cfg.ExternalURL+CallbackPath, cfg.Logger)
		if err != nil {
			return nil, err
		}
		h.oidc = f
	}
	r := chi.NewRouter()
	r.Get(LoginPath, h.login)
	r.Head(LoginPath, h.login)
	r.With(h.sameOrigin, middleware.RateLimitByIdentity(cfg.SignInLimit, time.Minute)).Post(LoginPath, h.signIn)
	r.Get(CallbackPath, h.callback)
	r.Get(LogoutPath, h.logoutPage)
	r.With(h.sameOrigin).Post(LogoutPath, h.logout)
	r.Get(stylePath, serveStyle)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, http.StatusNotFound, "no such page")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, http.StatusMethodNotAllowed, "method not allowed here")
	})
	h.mux = r
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	// Routes are whole paths: a router that mounted the Handler must not
	// hand it a path relative to the mount point.
	if chi.RouteContext(r.Context()) != nil {
		r = r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, nil))
	}
	h.mux.ServeHTTP(w, r)
}

// login starts a sign-in: off to the issuer, or the page that takes a
// token.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	next, ok := safeNext(r.URL.Query().Get("next"))
	if !ok {
		next = h.cfg.Home
	}
	signedOut := r.URL.Query().Get(signedOutParam) != ""
	if h.oidc != nil && !signedOut {
		h.oidc.start(w, r, h.flowCookie, next)
		return
	}
	h.page(w, r, http.StatusOK, pageData{Next: next, SignedOut: signedOut, OIDC: h.oidc != nil})
}

// signedOutParam marks the sign-in page a sign-out lands on. With OIDC
// it shows a link to sign in again rather than going on to the issuer: an
// issuer whose own session is still alive would sign the browser straight
// back in, and "Sign out" would seem to do nothing.
const signedOutParam = "signed_out"

// signIn takes a token from the sign-in page: a right one starts a
// session, a wrong one shows the page again with 401.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	if h.oidc != nil {
		problem.Write(w, r, http.StatusMethodNotAllowed, "sign in through the identity provider")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		problem.Write(w, r, http.StatusBadRequest, "the form could not be read")
		return
	}
	next, ok := safeNext(r.PostForm.Get("next"))
	if !ok {
		next = h.cfg.Home
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if token == "" || len(token) > middleware.MaxCredentialSize {
		h.page(w, r, http.StatusUnauthorized, pageData{Next: next, Error: "That token was not accepted."})
		return
	}
	id, err := h.cfg.Authenticator.Authenticate(r.Context(), middleware.Credentials{Scheme: "Bearer", Value: token, Source: middleware.SourceBearer})
	if err == nil && id.Subject == "" {
		err = middleware.ErrInvalidCredentials
	}
	if err != nil {
		level := slog.LevelInfo
		if !errors.Is(err, middleware.ErrInvalidCredentials) {
			level = slog.LevelWarn
		}
		h.cfg.Logger.LogAttrs(r.Context(), level, "sign-in refused", slog.String("error", err.Error()))
		h.page(w, r, http.StatusUnauthorized, pageData{Next: next, Error: "That token was not accepted."})
		return
	}
	h.startSession(w, r, id, next)
}

// startSession creates the session of id, sets its cookie and sends the
// browser on to next.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, id middleware.Identity, next string) {
	sid, expires, err := h.cfg.Sessions.Create(r.Context(), id)
	if err != nil {
		h.cfg.Logger.WarnContext(r.Context(), "session not created", "err", err)
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, http.StatusServiceUnavailable, "the session could not be stored; try again")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: h.cfg.Cookie, Value: sid, Path: "/",
		MaxAge: int(time.Until(expires).Round(time.Second) / time.Second), Expires: expires,
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
	h.cfg.Logger.InfoContext(r.Context(), "signed in", "subject", id.Subject)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logoutPage shows a button that signs out: a GET must not end a session
// (a cross-site image could), a same-origin POST does.
func (h *Handler) logoutPage(w http.ResponseWriter, r *http.Request) {
	h.page(w, r, http.StatusOK, pageData{Logout: true})
}

// logout ends the browser's session in every process, clears its cookie
// and sends the browser to sign in again.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(h.cfg.Cookie); err == nil {
		if err := h.cfg.Sessions.Revoke(r.Context(), c.Value); err != nil {
			h.cfg.Logger.WarnContext(r.Context(), "session not ended", "err", err)
			w.Header().Set("Retry-After", "1")
			problem.Write(w, r, http.StatusServiceUnavailable, "the session could not be ended; try again")
			return
		}
	}
	http.SetCookie(w, &http.Cookie{
		Name: h.cfg.Cookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, LoginPath+"?"+signedOutParam+"=1", http.StatusSeeOther)
}

// sameOrigin refuses a POST another site's page made: a sign-in or
// sign-out form is only ever posted by this origin's own pages. Browsers
// send Sec-Fetch-Site (and Origin on every POST); a request with neither
// is no browser's form, and is let through.
func (h *Handler) sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		allowed := true
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
			allowed = site == "same-origin"
		} else if origin := r.Header.Get("Origin"); origin != "" {
			allowed = origin == h.cfg.ExternalURL || sameHost(origin, r.Host)
		}
		if !allowed {
			problem.Write(w, r, http.StatusForbidden, "cross-site request refused")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func sameHost(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

// safeNext returns next when it is a path of this origin to return to
// after signing in, and false for anything a browser could take to
// another origin: an absolute URL, a scheme-relative "//host", "/\host"
// (browsers read a backslash as a slash), control characters, or a path
// that is not absolute.
func safeNext(next string) (string, bool) {
	if next == "" || len(next) > 2048 || next[0] != '/' ||
		strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\") {
		return "", false
	}
	for i := range len(next) {
		if next[i] < 0x20 || next[i] == 0x7f {
			return "", false
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "", false
	}
	return next, true
}
