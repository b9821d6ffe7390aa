package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/middleware/report"
)

// DefaultCSRFHeader is the header that marks a cookie-authenticated request
// as made by the application's own script rather than a cross-site form.
const DefaultCSRFHeader = "X-CSRF-Token"

// DefaultExclude returns the paths that need no authentication by default:
// the health check, the API documentation and the OpenAPI documents.
func DefaultExclude() []string {
	return []string{
		"/health",
		"/docs", "/docs/*",
		"/openapi.json", "/openapi.yaml", "/openapi-3.0.json", "/openapi-3.0.yaml",
		"/schemas/*",
	}
}

// PassthroughConfig configures Passthrough. Only Authenticator is required.
type PassthroughConfig struct {
	// Extractors are tried in order; the first that finds a credential
	// wins. Default: BearerExtractor, KeyExtractor, then
	// CookieExtractor(DefaultCookieName).
	Extractors []Extractor
	// Authenticator verifies what the extractors found. Required.
	Authenticator Authenticator
	// Optional lets requests without any credential through, without an
	// Identity. A credential that is present but refused is still a 401.
	Optional bool
	// Exclude lists paths served without authentication. An entry is an
	// exact path ("/health"), or a prefix when it ends in "/*" ("/docs/*"
	// matches "/docs/a.css" but not "/docs"). Matching is exact and
	// case-sensitive against the request path, which must already be clean:
	// "//health", "/health/", "/health/../x", any percent-escape in the path
	// or a change of case never match, so they are authenticated as usual.
	// Inside a chi sub-router the path relative to the mount point is
	// matched. nil means DefaultExclude(); use an empty slice for none.
	Exclude []string
	// RequiredGroup, when set, refuses verified callers outside that group
	// with 403.
	RequiredGroup string
	// AdminGroup, when set, marks its members as admins: IsAdmin(ctx).
	AdminGroup string
	// CSRF guards cookie-authenticated requests.
	CSRF CSRFConfig
	// Logger receives refusals at debug level (operational failures at
	// warn), never with the credential. Default slog.Default().
	Logger *slog.Logger
}

// CSRFConfig configures the cross-site request guard. A request whose
// credential came from a cookie and whose method is unsafe (not GET, HEAD,
// OPTIONS or TRACE) is allowed only if one of these holds, in this order:
//   - it carries the CSRF header with any non-empty value (a cross-site form
//     cannot set headers, and a cross-site script needs a CORS preflight
//     that must not allow this header);
//   - its Origin is one of AllowedOrigins;
//   - its Sec-Fetch-Site is "same-origin" (when the browser sent that header,
//     no other value is accepted);
//   - its Origin's host equals the request's Host.
//
// Anything else is refused with 403. Bearer and header credentials are not
// checked: browsers do not attach them on their own.
type CSRFConfig struct {
	// Header is the CSRF header name. Default DefaultCSRFHeader.
	Header string
	// AllowedOrigins are other origins ("https://app.example.com") allowed
	// to send unsafe requests with the cookie.
	AllowedOrigins []string
	// Disabled turns the guard off, for deployments that do it elsewhere.
	Disabled bool
}

// Passthrough returns middleware that extracts the caller's credentials,
// verifies them, and puts the Identity (WithIdentity) and the Credentials
// (WithCredentials) in the request context, so that handlers know the
// caller and outgoing requests can act on its behalf (ForwardingTransport).
//
// Missing credentials get 401 with "WWW-Authenticate: Bearer" (unless
// Optional); malformed or refused ones get 401 with error="invalid_token".
// The problem+json body never says why a credential failed. Passthrough
// panics at construction when the configuration is invalid, naming the
// setting.
//
// CORS preflights (OPTIONS without credentials) are refused like any other
// request: put a CORS handler before Passthrough when browsers on other
// origins call the service.
func Passthrough(cfg PassthroughConfig) func(http.Handler) http.Handler {
	if err := cfg.validate(); err != nil {
		panic(err.Error())
	}
	p := &passthrough{
		extractors: slices.Clone(cfg.Extractors),
		auth:       cfg.Authenticator,
		optional:   cfg.Optional,
		exclude:    newPathSet(cfg.Exclude),
		required:   cfg.RequiredGroup,
		admin:      cfg.AdminGroup,
		csrf:       CSRFConfig{Header: cfg.CSRF.Header, AllowedOrigins: slices.Clone(cfg.CSRF.AllowedOrigins), Disabled: cfg.CSRF.Disabled},
		logger:     cfg.Logger,
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.serve(w, r, next)
		})
	}
}

func (c *PassthroughConfig) validate() error {
	if c.Authenticator == nil {
		return errors.New("middleware: PassthroughConfig.Authenticator is required")
	}
	if c.Extractors == nil {
		c.Extractors = []Extractor{BearerExtractor(), KeyExtractor(), CookieExtractor(DefaultCookieName)}
	}
	if len(c.Extractors) == 0 || slices.Contains(c.Extractors, nil) {
		return errors.New("middleware: PassthroughConfig.Extractors is empty or holds nil")
	}
	if c.Exclude == nil {
		c.Exclude = DefaultExclude()
	}
	for _, e := range c.Exclude {
		if !validExclude(e) {
			return fmt.Errorf("middleware: PassthroughConfig.Exclude: %q is not a clean absolute path, optionally ending in /*", e)
		}
	}
	if c.CSRF.Header == "" {
		c.CSRF.Header = DefaultCSRFHeader
	}
	if !validHeaderName(c.CSRF.Header) {
		return fmt.Errorf("middleware: PassthroughConfig.CSRF.Header: %q is not a header name", c.CSRF.Header)
	}
	for _, o := range c.CSRF.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return fmt.Errorf("middleware: PassthroughConfig.CSRF.AllowedOrigins: %q is not an origin (scheme://host[:port])", o)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

type passthrough struct {
	extractors []Extractor
	auth       Authenticator
	optional   bool
	exclude    pathSet
	required   string
	admin      string
	csrf       CSRFConfig
	logger     *slog.Logger
}

func (p *passthrough) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if p.exclude.skip(r) {
		next.ServeHTTP(w, r)
		return
	}
	ctx := r.Context()
	creds, found, err := p.extract(r)
	if err != nil {
		p.refused(ctx, r, creds, err)
		report.Refuse(ctx, report.InvalidToken)
		problem.Unauthorized(w, r, true)
		return
	}
	if !found {
		if p.optional {
			next.ServeHTTP(w, r)
			return
		}
		report.Refuse(ctx, report.MissingCredentials)
		problem.Unauthorized(w, r, false)
		return
	}
	id, err := p.auth.Authenticate(ctx, creds)
	if err == nil && id.Subject == "" {
		// Ownership checks compare subjects: an identity without one
		// (a custom authenticator's mistake) must never pass as anyone.
		err = fmt.Errorf("%w: authenticator returned no subject", ErrInvalidCredentials)
	}
	if err != nil {
		p.refused(ctx, r, creds, err)
		report.Refuse(ctx, report.InvalidToken)
		problem.Unauthorized(w, r, true)
		return
	}
	report.SetSubject(ctx, id.Subject)
	if creds.Source == SourceCookie && !p.csrfAllowed(r) {
		p.logger.LogAttrs(ctx, slog.LevelDebug, "cross-site request refused",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("subject", id.Subject))
		report.Refuse(ctx, report.CSRF)
		problem.Write(w, r, http.StatusForbidden, "cross-site request refused")
		return
	}
	if p.required != "" && !id.InGroup(p.required) {
		report.Refuse(ctx, report.ForbiddenGroup)
		problem.Write(w, r, http.StatusForbidden, "caller is not in the group this endpoint requires")
		return
	}
	ctx = WithIdentity(ctx, id)
	ctx = context.WithValue(ctx, requestAuthKey{}, &requestAuth{creds: creds, admin: id.InGroup(p.admin)})
	next.ServeHTTP(w, r.WithContext(ctx))
}

func (p *passthrough) extract(r *http.Request) (Credentials, bool, error) {
	for _, e := range p.extractors {
		c, ok, err := e.Extract(r)
		if err != nil || ok {
			return c, ok, err
		}
	}
	return Credentials{}, false, nil
}

// refused logs why a credential was refused. Refusals are routine (debug);
// anything else means the authenticator could not do its job (warn).
func (p *passthrough) refused(ctx context.Context, r *http.Request, c Credentials, err error) {
	level := slog.LevelWarn
	if errors.Is(err, ErrInvalidCredentials) || errors.Is(err, ErrMalformedCredentials) || ctx.Err() != nil {
		level = slog.LevelDebug
	}
	p.logger.LogAttrs(ctx, level, "credentials refused",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Any("credentials", c), slog.String("error", err.Error()))
}

// csrfAllowed applies CSRFConfig; see its documentation.
func (p *passthrough) csrfAllowed(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	if p.csrf.Disabled || r.Header.Get(p.csrf.Header) != "" {
		return true
	}
	origin := r.Header.Get("Origin")
	if origin != "" && slices.Contains(p.csrf.AllowedOrigins, origin) {
		return true
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	if origin == "" || origin == "null" {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// pathSet holds the excluded paths.
type pathSet struct {
	exact    map[string]struct{}
	prefixes []string // each ends in "/"
}

func newPathSet(entries []string) pathSet {
	s := pathSet{exact: make(map[string]struct{}, len(entries))}
	for _, e := range entries {
		if prefix, ok := strings.CutSuffix(e, "*"); ok {
			s.prefixes = append(s.prefixes, prefix)
		} else {
			s.exact[e] = struct{}{}
		}
	}
	return s
}

func validExclude(e string) bool {
	if prefix, ok := strings.CutSuffix(e, "/*"); ok {
		return prefix == "" || isCleanPath(prefix)
	}
	return isCleanPath(e) && !strings.Contains(e, "*")
}

// isCleanPath reports whether p is an absolute path that path.Clean leaves
// unchanged (no empty, "." or ".." segments and no trailing slash), with no
// ";" and no segment that starts with ".": servlet containers (Tomcat,
// Jetty) read "..;" as ".." and "/a;x" as "/a", so a proxied server could
// resolve an excluded-looking path to another.
func isCleanPath(p string) bool {
	return p != "" && p[0] == '/' && path.Clean(p) == p &&
		!strings.Contains(p, ";") && !strings.Contains(p, "/.")
}

// skip reports whether r is for an excluded path. Anything unusual about the
// path means no: a bypass must only ever be taken by the canonical spelling.
func (s pathSet) skip(r *http.Request) bool {
	if len(s.exact) == 0 && len(s.prefixes) == 0 {
		return false
	}
	full := r.URL.Path
	// Any escape in the request path (%2e, %2f, even an escaped letter)
	// shows in RawPath or makes EscapedPath differ from Path.
	if r.URL.RawPath != "" || !isCleanPath(full) || r.URL.EscapedPath() != full {
		return false
	}
	p := full
	if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePath != "" {
		p = rctx.RoutePath
		if !isCleanPath(p) {
			return false
		}
	}
	if _, ok := s.exact[p]; ok {
		return true
	}
	for _, prefix := range s.prefixes {
		if len(p) > len(prefix) && strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}
