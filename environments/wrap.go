package environments

import (
	"net/http"
	"slices"
	"strings"

	"github.com/taskgate/taskgate/internal/apidocs"
	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/middleware/report"
)

// PublicPather is implemented by environments that serve paths which
// never need credentials: /health, and the docs of environments that have
// them. Only what an environment really serves is listed, so an excluded
// path can never fall through to a handler of the user's unauthenticated.
// Wrap serves these paths without credentials and does not count them
// against Limits.MaxInFlight.
type PublicPather interface{ PublicPaths() []string }

// PublicPaths implements PublicPather.
func (a *AppEnvironment) PublicPaths() []string {
	return slices.Concat([]string{"/health"}, apidocs.Paths)
}

// Wrap puts what every environment shares in front of its handler, in the
// order of the data path: passthrough credentials and authentication, the
// rate limit per identity, the in-flight limit (max_inputs), and the body
// size limit. The environment's public paths (/health, the docs) are not
// counted in flight: a health check must not get 429 because the
// environment is busy. An AppEnvironment applies its in-flight limit itself, around
// its app only, and shares it with its queue's replays; Wrap leaves it out
// there. The App calls Wrap; a user serving an environment's handler
// outside an App should too.
func Wrap(env Environment, deps *Deps, h http.Handler) (http.Handler, error) {
	s := env.Settings()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var public []string
	if p, ok := env.(PublicPather); ok {
		public = p.PublicPaths()
	}
	exclude := slices.Concat(public, s.Auth.Exclude)
	if exclude == nil {
		exclude = []string{} // nil would mean Passthrough's defaults
	}
	auth := deps.Authenticator
	if auth == nil {
		auth = middleware.Chain() // refuses every credential
	}
	maxBody := s.Limits.MaxBodyBytes
	if maxBody == 0 {
		maxBody = DefaultMaxBodyBytes
	}
	h = middleware.BodyLimit(maxBody)(h)
	if l, ok := env.(inFlightLimiter); s.Limits.MaxInFlight > 0 && (!ok || !l.appliesMaxInFlight()) {
		h = middleware.ExceptPaths(public, middleware.ConcurrencyLimit(s.Limits.MaxInFlight, s.Limits.QueueTimeout))(h)
	}
	if s.Limits.RateLimit > 0 {
		h = middleware.RateLimitByIdentity(s.Limits.RateLimit, s.Limits.RateWindow)(h)
	}
	h = refuseSystemSubject(h)
	h = middleware.Passthrough(middleware.PassthroughConfig{
		Extractors:    deps.Extractors,
		Authenticator: auth,
		Optional:      s.Auth.Disabled,
		Exclude:       exclude,
		RequiredGroup: s.Auth.RequiredGroup,
		AdminGroup:    deps.AdminGroup,
		Logger:        deps.Logger,
	})(h)
	if b, ok := env.(BrowserPather); ok {
		h = toLogin(b.BrowserPaths(), h)
	}
	if slices.Contains(public, "/docs") {
		h = apidocs.ServeSlash(h)
	}
	return h, nil
}

// DocPolicy is what an environment's OpenAPI document declares of the
// auth and limits Wrap puts in front of it (apidocs.Finish): public are the
// environment's public paths (PublicPather), beside Auth.Exclude.
func DocPolicy(s *Settings, public []string) apidocs.Policy {
	exclude := slices.Concat(public, s.Auth.Exclude)
	p := apidocs.Policy{
		Public: func(path string) bool {
			if s.Auth.Disabled {
				return true
			}
			for _, e := range exclude {
				if e == path || strings.HasSuffix(e, "/*") && strings.HasPrefix(path, strings.TrimSuffix(e, "*")) {
					return true
				}
			}
			return false
		},
		Secured:  []int{http.StatusUnauthorized},
		Body:     []int{http.StatusRequestEntityTooLarge},
		JSONBody: []int{http.StatusUnsupportedMediaType},
	}
	if s.Auth.RequiredGroup != "" {
		p.Secured = append(p.Secured, http.StatusForbidden)
	}
	if s.Limits.RateLimit > 0 || s.Limits.MaxInFlight > 0 {
		p.Secured = append(p.Secured, http.StatusTooManyRequests)
	}
	return p
}

// refuseSystemSubject answers 403 to a caller whose verified subject is
// SystemSubject, the owner of the runs that hold environments' resources:
// ownership checks compare subjects, so such a caller (an issuer's "sub",
// an upstream's user name) would otherwise see, follow and abort every
// replica as if it were its own.
func refuseSystemSubject(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := middleware.IdentityFromContext(r.Context()); ok && id.Subject == SystemSubject {
			report.Refuse(r.Context(), report.ForbiddenGroup)
			problem.Write(w, r, http.StatusForbidden, "subject "+SystemSubject+" is reserved for taskgate's own runs")
			return
		}
		next.ServeHTTP(w, r)
	})
}
