package environments

import (
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-chi/chi/v5"

	"github.com/taskgate/taskgate/internal/apidocs"
	"github.com/taskgate/taskgate/tasks"
)

// AppConfig configures an AppEnvironment.
type AppConfig struct {
	Settings
	// Handler serves every request that no huma operation of the
	// environment claims: a chi router, an http.ServeMux, any handler. Nil
	// serves the operations alone. It sees the caller's Identity in the
	// request context (middleware.IdentityFromContext) and can forward the
	// caller's credentials downstream. /docs and the OpenAPI documents are
	// the environment's and shadow the same paths of Handler.
	Handler http.Handler
	// Register adds huma operations to the environment's API; they are
	// served and appear in the environment's /docs. It is called at every
	// Build with a fresh API.
	Register func(api huma.API)
	// Resources are what the app's handlers need from the node serving it,
	// in the task resource syntax. They are checked here; one process does
	// not reserve them, a deployment tool may read them back.
	Resources tasks.Resources
}

// AppEnvironment serves an application of the user's own behind the
// environment's auth and limits: Flyte's FastAPIAppEnvironment, Modal's
// asgi_app. Its huma operations, whether from AppConfig.Register or from
// Endpoint, are documented at the environment's /docs. Create it with
// NewAppEnvironment.
type AppEnvironment struct {
	cfg AppConfig

	mu        sync.Mutex
	endpoints []endpointReg
	urls      URLSettings // from the last Build, for URL
}

// endpointReg registers one function endpoint on an API.
type endpointReg struct {
	name     string
	register func(api huma.API)
}

var _ Environment = (*AppEnvironment)(nil)

// NewAppEnvironment checks cfg: invalid settings or malformed resources
// are errors here, not at the first request.
func NewAppEnvironment(cfg AppConfig) (*AppEnvironment, error) {
	if err := cfg.Settings.validate(); err != nil {
		return nil, err
	}
	if cfg.Label != "" {
		if err := ValidateLabel(cfg.Label); err != nil {
			return nil, fmt.Errorf("environment %s: %w", cfg.Name, err)
		}
	}
	if _, err := cfg.Resources.Parse(); err != nil {
		return nil, fmt.Errorf("environment %s: resources: %w", cfg.Name, err)
	}
	if cfg.Title == "" {
		cfg.Title = cfg.Name
	}
	return &AppEnvironment{cfg: cfg}, nil
}

// MustAppEnvironment is NewAppEnvironment that panics on error.
func MustAppEnvironment(cfg AppConfig) *AppEnvironment {
	a, err := NewAppEnvironment(cfg)
	if err != nil {
		panic(err)
	}
	return a
}

// Settings implements Environment.
func (a *AppEnvironment) Settings() *Settings { return &a.cfg.Settings }

// Resources returns the resources the app declared.
func (a *AppEnvironment) Resources() tasks.Resources { return a.cfg.Resources }

// Build implements Environment: a router that serves the environment's
// huma operations and docs, and hands everything else to Handler. A panic
// of huma while registering an operation (a type it cannot describe, two
// operations on one path) is returned as an error.
func (a *AppEnvironment) Build(rt *Runtime) (h http.Handler, err error) {
	a.mu.Lock()
	a.urls = rt.URLs
	endpoints := append([]endpointReg(nil), a.endpoints...)
	a.mu.Unlock()

	r := chi.NewRouter()
	cfg := apidocs.Config(a.cfg.Title, rt.Version)
	cfg.Info.Description = a.cfg.Description
	if a.cfg.PathPrefix != "" {
		cfg.Servers = []*huma.Server{{URL: a.cfg.PathPrefix}}
	}
	api := apidocs.New(r, cfg)

	register := func(what string, fn func(huma.API)) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("environment %s: %s: %v", a.cfg.Name, what, p)
			}
		}()
		fn(api)
		return nil
	}
	var errs []error
	if a.cfg.Register != nil {
		errs = append(errs, register("Register", a.cfg.Register))
	}
	for _, e := range endpoints {
		errs = append(errs, register("endpoint "+e.name, e.register))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	if a.cfg.Handler != nil {
		// Like chi's Mount("/", Handler), but the operations stay free to
		// use any path: only what they do not claim goes to Handler. A chi
		// Handler shares the route context and so routes on the same path
		// (relative to a mount point, if any).
		r.NotFound(a.cfg.Handler.ServeHTTP)
		r.MethodNotAllowed(a.cfg.Handler.ServeHTTP)
	}
	return r, nil
}

// URL returns the environment's public URL under the App's URL settings
// ("https://<workspace>--<label>.<base domain>"), or "" before the first
// Build or without a base domain.
func (a *AppEnvironment) URL() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return URLFor(a.urls, &a.cfg.Settings)
}

// addEndpoint records a function endpoint for the next Build.
func (a *AppEnvironment) addEndpoint(e endpointReg) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, o := range a.endpoints {
		if o.name == e.name {
			panic(fmt.Sprintf("environments.Endpoint: environment %s already has an endpoint named %q", a.cfg.Name, e.name))
		}
	}
	a.endpoints = append(a.endpoints, e)
}
