package environments

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/taskgate/taskgate/internal/dnslabel"
)

var (
	// ErrDuplicateHost is the error when two environments, or two entries
	// of one, claim the same host.
	ErrDuplicateHost = errors.New("host claimed twice")
	// ErrInvalidDomain is the error for a custom domain that is not a host
	// name, or a wildcard other than "*." followed by a domain of at least
	// two labels.
	ErrInvalidDomain = errors.New("invalid custom domain")
)

// HostRouter picks the environment that serves a request by its Host, the
// way Modal routes web functions: an exact custom domain first, then a
// wildcard custom domain ("*.example.com" matches one more label:
// "api.example.com", not "example.com" nor "a.b.example.com"), then the
// environment's URL label ("<subdomain>.<base domain>"). Hosts are compared
// case-insensitively, without port or trailing dot. A HostRouter is
// immutable and safe for concurrent use.
type HostRouter struct {
	exact    map[string]Environment
	wildcard map[string]Environment // by the parent: "example.com" for "*.example.com"
	labels   map[string]Environment // by the full label host
}

// NewHostRouter indexes the hosts of envs. Label hosts exist only when
// u.BaseDomain is set. It fails on an invalid label or custom domain, and
// when two hosts collide: the same exact domain or wildcard twice, the
// same label host twice, or an exact domain equal to a label host.
func NewHostRouter(u URLSettings, envs []Environment) (*HostRouter, error) {
	h := &HostRouter{
		exact:    map[string]Environment{},
		wildcard: map[string]Environment{},
		labels:   map[string]Environment{},
	}
	claim := func(m map[string]Environment, host, what string, env Environment) error {
		if other, ok := m[host]; ok {
			return fmt.Errorf("%w: %s %q of environment %s is also claimed by %s",
				ErrDuplicateHost, what, host, env.Settings().Name, other.Settings().Name)
		}
		m[host] = env
		return nil
	}
	for _, env := range envs {
		s := env.Settings()
		host, err := HostFor(u, s)
		if err != nil {
			return nil, err
		}
		if host != "" {
			if err := claim(h.labels, host, "label host", env); err != nil {
				return nil, err
			}
		}
		for _, d := range s.CustomDomains {
			parent, wildcard, err := parseDomain(d)
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", s.Name, err)
			}
			if wildcard {
				err = claim(h.wildcard, parent, "wildcard domain", env)
			} else {
				err = claim(h.exact, parent, "domain", env)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	for host, env := range h.exact {
		if other, ok := h.labels[host]; ok {
			return nil, fmt.Errorf("%w: domain %q of environment %s is the label host of %s",
				ErrDuplicateHost, host, env.Settings().Name, other.Settings().Name)
		}
	}
	return h, nil
}

// Match returns the environment that serves host, a Host header value.
func (h *HostRouter) Match(host string) (Environment, bool) {
	host = normalizeHost(host)
	if host == "" {
		return nil, false
	}
	if env, ok := h.exact[host]; ok {
		return env, true
	}
	if _, parent, ok := strings.Cut(host, "."); ok {
		if env, ok := h.wildcard[parent]; ok {
			return env, true
		}
	}
	env, ok := h.labels[host]
	return env, ok
}

// Handler routes each request to handlers[name of the matched environment],
// and to fallback when no environment or no handler matches. A nil
// fallback answers 404.
func (h *HostRouter) Handler(handlers map[string]http.Handler, fallback http.Handler) http.Handler {
	if fallback == nil {
		fallback = http.NotFoundHandler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if env, ok := h.Match(r.Host); ok {
			if next, ok := handlers[env.Settings().Name]; ok {
				next.ServeHTTP(w, r)
				return
			}
		}
		fallback.ServeHTTP(w, r)
	})
}

// Label returns the URL label of environment settings s: s.Label when set
// (it must pass ValidateLabel), else DefaultLabel(u.App, s.Name).
func Label(u URLSettings, s *Settings) (string, error) {
	if s.Label != "" {
		if err := ValidateLabel(s.Label); err != nil {
			return "", fmt.Errorf("environment %s: %w", s.Name, err)
		}
		return s.Label, nil
	}
	label := DefaultLabel(u.App, s.Name)
	if label == "" {
		return "", fmt.Errorf("environment %s: %w: no letter or digit to build a default label from", s.Name, ErrInvalidLabel)
	}
	return label, nil
}

// HostFor returns the label host of s, "<subdomain>.<base domain>", or ""
// when u has no base domain.
func HostFor(u URLSettings, s *Settings) (string, error) {
	label, err := Label(u, s)
	if err != nil {
		return "", err
	}
	base := normalizeHost(u.BaseDomain)
	if base == "" {
		return "", nil
	}
	return Subdomain(u, label) + "." + base, nil
}

// URLFor is the public URL of s: "<scheme>://<subdomain>.<base domain>"
// (scheme https unless u.Scheme says otherwise), or "" when u has no base
// domain or s an invalid label.
func URLFor(u URLSettings, s *Settings) string {
	host, err := HostFor(u, s)
	if err != nil || host == "" {
		return ""
	}
	scheme := u.Scheme
	if scheme == "" {
		scheme = "https"
	}
	return scheme + "://" + host
}

// normalizeHost lowercases a Host value and drops its port and trailing dot.
func normalizeHost(host string) string {
	if strings.HasPrefix(host, "[") {
		// An IPv6 literal, with or without a port.
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		} else {
			host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// parseDomain checks a custom domain and returns it normalized; for a
// wildcard it returns the parent domain ("example.com" for "*.example.com").
func parseDomain(d string) (host string, wildcard bool, err error) {
	s := strings.TrimSuffix(strings.ToLower(d), ".")
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		if !strings.Contains(rest, ".") {
			return "", false, fmt.Errorf("%w %q: a wildcard needs a domain of at least two labels after \"*.\"", ErrInvalidDomain, d)
		}
		s, wildcard = rest, true
	}
	if !dnslabel.Hostname(s) {
		return "", false, fmt.Errorf("%w %q: not a host name (a \"*.\" prefix is the only wildcard allowed)", ErrInvalidDomain, d)
	}
	return s, wildcard, nil
}
