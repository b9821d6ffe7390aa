package environments

import (
	"net/http"
	"slices"

	"github.com/taskgate/taskgate/middleware"
)

// Wrap puts what every environment shares in front of its handler, in the
// order of the data path: passthrough credentials and authentication, the
// rate limit per identity, the in-flight limit (max_inputs), and the body
// size limit. The App calls it; a user serving an environment's handler
// outside an App should too.
func Wrap(s *Settings, rt *Runtime, h http.Handler) (http.Handler, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	exclude := slices.Concat(middleware.DefaultExclude(), s.Auth.Exclude)
	auth := rt.Authenticator
	if auth == nil {
		auth = middleware.Chain() // refuses every credential
	}
	maxBody := s.Limits.MaxBodyBytes
	if maxBody == 0 {
		maxBody = DefaultMaxBodyBytes
	}
	h = middleware.BodyLimit(maxBody)(h)
	if s.Limits.MaxInFlight > 0 {
		h = middleware.ConcurrencyLimit(s.Limits.MaxInFlight, s.Limits.QueueTimeout)(h)
	}
	if s.Limits.RateLimit > 0 {
		h = middleware.RateLimitByIdentity(s.Limits.RateLimit, s.Limits.RateWindow)(h)
	}
	h = middleware.Passthrough(middleware.PassthroughConfig{
		Extractors:    rt.Extractors,
		Authenticator: auth,
		Optional:      s.Auth.Disabled,
		Exclude:       exclude,
		RequiredGroup: s.Auth.RequiredGroup,
		AdminGroup:    rt.AdminGroup,
		Logger:        rt.Logger,
	})(h)
	return h, nil
}
