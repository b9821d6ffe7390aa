package environments

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/internal/dnslabel"
)

// namedEnv is the smallest Environment: it answers with its name.
type namedEnv struct{ s Settings }

func (e *namedEnv) Settings() *Settings { return &e.s }

func (e *namedEnv) Build(*Deps) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, e.s.Name)
	}), nil
}

var _ Environment = (*namedEnv)(nil)

// serveHosts serves envs behind a HostRouter on loopback; the fallback
// answers "none".
func serveHosts(t *testing.T, u URLSettings, envs ...Environment) *httptest.Server {
	t.Helper()
	hr, err := NewHostRouter(u, envs)
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]http.Handler{}
	for _, e := range envs {
		h, err := e.Build(&Deps{})
		if err != nil {
			t.Fatal(err)
		}
		handlers[e.Settings().Name] = h
	}
	fallback := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "none")
	})
	srv := httptest.NewServer(hr.Handler(handlers, fallback))
	t.Cleanup(srv.Close)
	return srv
}

// getHost sends GET / to srv with the given Host header and returns the body.
func getHost(t *testing.T, srv *httptest.Server, host string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHostRouterOverHTTP(t *testing.T) {
	t.Parallel()
	u := URLSettings{Workspace: "ECorp", EnvSuffix: "prod", BaseDomain: "Apps.Test.", App: "shop"}
	srv := serveHosts(t, u,
		&namedEnv{Settings{Name: "orders"}},
		&namedEnv{Settings{Name: "speech", Label: "speechify"}},
		&namedEnv{Settings{Name: "api", CustomDomains: []string{"API.example.com", "api.example.net."}}},
		&namedEnv{Settings{Name: "tenants", CustomDomains: []string{"*.example.com"}}},
		&namedEnv{Settings{Name: "deep", CustomDomains: []string{"*.eu.example.com"}}},
	)
	tests := []struct {
		host, want string
	}{
		{"ecorp-prod--shop-orders.apps.test", "orders"},
		{"ECORP-PROD--SHOP-ORDERS.APPS.TEST:8443", "orders"},
		{"ecorp-prod--shop-orders.apps.test.", "orders"},
		{"ecorp-prod--speechify.apps.test", "speech"},
		{"ecorp-prod--shop-speech.apps.test", "none"}, // a custom label replaces the default
		{"api.example.com", "api"},                    // exact beats the wildcard
		{"Api.Example.Com:443", "api"},
		{"api.example.net", "api"},
		{"acme.example.com", "tenants"},
		{"example.com", "none"},      // a wildcard does not match its apex
		{"a.b.example.com", "none"},  // nor two more labels
		{"x.eu.example.com", "deep"}, // a deeper wildcard
		{"ecorp-prod--shop-orders.other.test", "none"},
		{"127.0.0.1", "none"},
		{"[::1]:8080", "none"},
	}
	for _, tt := range tests {
		if got := getHost(t, srv, tt.host); got != tt.want {
			t.Errorf("Host %q served by %q, want %q", tt.host, got, tt.want)
		}
	}
}

func TestHostRouterWildcardBeatsLabel(t *testing.T) {
	t.Parallel()
	u := URLSettings{Workspace: "ws", BaseDomain: "apps.test"}
	srv := serveHosts(t, u,
		&namedEnv{Settings{Name: "labelled"}},
		&namedEnv{Settings{Name: "catchall", CustomDomains: []string{"*.apps.test"}}},
		&namedEnv{Settings{Name: "pinned", CustomDomains: []string{"pinned.apps.test"}}},
	)
	for host, want := range map[string]string{
		"ws--labelled.apps.test": "catchall",
		"ws--catchall.apps.test": "catchall",
		"pinned.apps.test":       "pinned",
		"other.apps.test":        "catchall",
	} {
		if got := getHost(t, srv, host); got != want {
			t.Errorf("Host %q served by %q, want %q", host, got, want)
		}
	}
}

func TestNewHostRouterRefuses(t *testing.T) {
	t.Parallel()
	u := URLSettings{Workspace: "ws", BaseDomain: "apps.test"}
	env := func(name, label string, domains ...string) Environment {
		return &namedEnv{Settings{Name: name, Label: label, CustomDomains: domains}}
	}
	tests := []struct {
		name string
		envs []Environment
		want error
	}{
		{"same domain twice", []Environment{env("a", "", "x.example.com"), env("b", "", "X.example.com.")}, ErrDuplicateHost},
		{"same domain in one env", []Environment{env("a", "", "x.example.com", "x.example.com")}, ErrDuplicateHost},
		{"same wildcard twice", []Environment{env("a", "", "*.example.com"), env("b", "", "*.EXAMPLE.com")}, ErrDuplicateHost},
		{"same label twice", []Environment{env("a", "shared"), env("b", "shared")}, ErrDuplicateHost},
		{"default label taken by a custom label", []Environment{env("a", ""), env("b", "a")}, ErrDuplicateHost},
		{"domain is a label host", []Environment{env("a", ""), env("b", "", "ws--a.apps.test")}, ErrDuplicateHost},
		{"invalid label", []Environment{env("a", "Bad_Label")}, ErrInvalidLabel},
		{"wildcard without dot", []Environment{env("a", "", "*example.com")}, ErrInvalidDomain},
		{"wildcard inside", []Environment{env("a", "", "a.*.example.com")}, ErrInvalidDomain},
		{"wildcard over a TLD", []Environment{env("a", "", "*.com")}, ErrInvalidDomain},
		{"double wildcard", []Environment{env("a", "", "*.*.example.com")}, ErrInvalidDomain},
		{"bare star", []Environment{env("a", "", "*")}, ErrInvalidDomain},
		{"empty domain", []Environment{env("a", "", "")}, ErrInvalidDomain},
		{"underscore", []Environment{env("a", "", "my_app.example.com")}, ErrInvalidDomain},
		{"empty label in domain", []Environment{env("a", "", "a..example.com")}, ErrInvalidDomain},
		{"scheme in domain", []Environment{env("a", "", "https://example.com")}, ErrInvalidDomain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewHostRouter(u, tt.envs)
			if !errors.Is(err, tt.want) {
				t.Fatalf("NewHostRouter: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestURLFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		u    URLSettings
		s    Settings
		want string
	}{
		{"default label", URLSettings{Workspace: "ECorp", EnvSuffix: "prod", BaseDomain: "modal.run", App: "text_to_speech"},
			Settings{Name: "flask-app"}, "https://ecorp-prod--text-to-speech-flask-app.modal.run"},
		{"custom label, dev, http", URLSettings{Workspace: "ecorp", BaseDomain: "localhost", Scheme: "http", Dev: true},
			Settings{Name: "x", Label: "speechify"}, "http://ecorp--speechify-dev.localhost"},
		{"no base domain", URLSettings{Workspace: "ecorp"}, Settings{Name: "x"}, ""},
		{"invalid label", URLSettings{BaseDomain: "modal.run"}, Settings{Name: "x", Label: "No"}, ""},
	}
	for _, tt := range tests {
		if got := URLFor(tt.u, &tt.s); got != tt.want {
			t.Errorf("%s: URLFor = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// FuzzCustomDomain checks the custom domain parser and Host matching
// together: a domain the parser accepts is a valid host name that routes
// to its environment under any spelling of the Host header (case, port,
// trailing dot), and an arbitrary Host never matches by accident.
func FuzzCustomDomain(f *testing.F) {
	f.Add("api.example.com", "API.Example.com:443", false)
	f.Add("*.example.com", "tenant.example.com.", true)
	f.Add("*.com", "x.com", true)
	f.Add("a..b", "[::1]:80", false)
	f.Add("xn--bcher-kva.example", "XN--BCHER-KVA.EXAMPLE", false)
	f.Fuzz(func(t *testing.T, domain, host string, upper bool) {
		env := &namedEnv{Settings{Name: "custom", CustomDomains: []string{domain}}}
		hr, err := NewHostRouter(URLSettings{}, []Environment{env})
		if err != nil {
			if !errors.Is(err, ErrInvalidDomain) {
				t.Fatalf("NewHostRouter(%q): %v is not ErrInvalidDomain", domain, err)
			}
			return
		}
		parent, wildcard, err := parseDomain(domain)
		if err != nil || !dnslabel.Hostname(parent) {
			t.Fatalf("accepted %q but parseDomain gives %q, %v", domain, parent, err)
		}
		want := parent
		if wildcard {
			want = "x." + parent
		}
		spelled := want + ".:8443"
		if upper {
			spelled = strings.ToUpper(spelled)
		}
		if got, ok := hr.Match(spelled); !ok || got != env {
			t.Fatalf("domain %q: Host %q does not route to it", domain, spelled)
		}
		if got, ok := hr.Match(host); ok {
			// Whatever matched must be the domain, normalized.
			h := normalizeHost(host)
			_, rest, _ := strings.Cut(h, ".")
			if got != env || (h != parent && !(wildcard && rest == parent)) {
				t.Fatalf("domain %q: Host %q matched", domain, host)
			}
		}
	})
}
