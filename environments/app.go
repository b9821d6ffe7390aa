package environments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-chi/chi/v5"

	"github.com/taskgate/taskgate/environments/internal/edge"
	"github.com/taskgate/taskgate/internal/apidocs"
	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
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
	// Build with a fresh API. Middleware it adds (api.UseMiddleware)
	// applies to the app's operations and endpoints, not to the
	// environment's docs or queue routes.
	Register func(api huma.API)
	// Resources are what the app's handlers need from the node serving it,
	// in the task resource syntax, checked here. Requests served directly
	// do not reserve them, unless Hold; queued requests (Queue) are placed
	// under them by the scheduler.
	Resources tasks.Resources
	// Hold holds Resources (a GPU) through the App's scheduler for as
	// long as the app serves: one long-lived run of the environment's
	// system task (see Holder), placed like any run, lends its devices to
	// the app, whose handlers read them with HeldDevices. Until it is
	// placed on this process's node, the app's routes (not /health nor
	// the docs) and the App's /ready answer 503 with the reason and
	// Retry-After. It needs an App with a Dispatcher whose node agent
	// runs in the serving process (a RoleAll process); past one machine,
	// use a server environment (environments/server), whose replicas may
	// run anywhere. Not with Queue.
	Hold bool
	// Queue serves queue routes in front of the app: any route can be
	// submitted, polled, cancelled and fetched later, and queued requests
	// run under Resources through the scheduler. Nil serves none; package
	// environments/queue makes one (queue.New).
	Queue Queue
}

// AppEnvironment serves an application of the user's own behind the
// environment's auth and limits: Flyte's FastAPIAppEnvironment, Modal's
// asgi_app. Its huma operations, whether from AppConfig.Register or from
// Endpoint, are documented at the environment's /docs. Create it with
// NewAppEnvironment.
//
// Limits.MaxInFlight (Modal's max_inputs) bounds what the app's own code
// serves at once: its operations and Handler, requests served directly
// and queued requests replayed (AppConfig.Queue) together. /health, the
// docs, the OpenAPI documents and the queue routes are not counted, so
// they answer while the app is busy.
type AppEnvironment struct {
	cfg AppConfig

	mu        sync.Mutex
	endpoints []endpointReg
	urls      URLSettings // from the last Build, for URL
	limit     *appLimit   // max_inputs (inflight.go), shared by direct requests and replays; set at the first Build
	limitSet  bool        // limit was set (it is nil without MaxInFlight)
	hold      *appHold    // AppConfig.Hold (app_hold.go); set at the first Build
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
	if err := cfg.Settings.Validate(); err != nil {
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
	a := &AppEnvironment{cfg: cfg}
	if cfg.Hold {
		if cfg.Queue != nil {
			return nil, fmt.Errorf("environment %s: %w", cfg.Name, errHoldQueue)
		}
		// The hold starts before the user's OnStart and stops after
		// their OnStop, as a lifespan around them.
		onStart, onStop := cfg.OnStart, cfg.OnStop
		a.cfg.OnStart = func(ctx context.Context) error {
			if err := a.startHold(ctx); err != nil {
				return err
			}
			if onStart != nil {
				if err := onStart(ctx); err != nil {
					return errors.Join(err, a.stopHold(ctx))
				}
			}
			return nil
		}
		a.cfg.OnStop = func(ctx context.Context) error {
			var err error
			if onStop != nil {
				err = onStop(ctx)
			}
			return errors.Join(err, a.stopHold(ctx))
		}
	}
	return a, nil
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
func (a *AppEnvironment) Build(deps *Deps) (h http.Handler, err error) {
	if err := a.cfg.Settings.Validate(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.urls = deps.URLs
	endpoints := append([]endpointReg(nil), a.endpoints...)
	if !a.limitSet {
		// One limit for the environment's life: replays of every Build
		// and the requests of the handler served share its slots.
		a.limit, a.limitSet = newAppLimit(a.cfg.Limits), true
	}
	limit := a.limit
	if a.cfg.Hold && a.hold == nil {
		if err := a.defineHold(deps); err != nil {
			a.mu.Unlock()
			return nil, err
		}
	}
	hold := a.hold
	a.mu.Unlock()

	r := chi.NewRouter()
	if hold != nil {
		r.Use(hold.gate)
	}
	// Handlers reach the App's dispatcher through the request, for Submit.
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), depsKey{}, deps)))
		})
	})
	cfg := apidocs.Config(a.cfg.Title, deps.Version)
	cfg.Transformers = append(cfg.Transformers, edge.ErrorBodies(deps.Logger))
	cfg.Info.Description = a.cfg.Description
	if a.cfg.PathPrefix != "" {
		cfg.Servers = []*huma.Server{{URL: a.cfg.PathPrefix}}
	}
	api := apidocs.New(r, cfg)
	edge.DescribePhases(api)
	// The app's own operations go through a group that holds them to
	// max_inputs; the docs and the queue routes, registered on api, do not.
	app := huma.NewGroup(api)
	app.UseMiddleware(edge.JSONOperations(api))
	if limit != nil {
		app.UseMiddleware(limit.operation)
	}

	register := func(what string, fn func(huma.API)) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("environment %s: %s: %v", a.cfg.Name, what, p)
			}
		}()
		fn(app)
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
	// The queue routes and their replay task, when there is a queue.
	if a.cfg.Queue != nil {
		err := a.cfg.Queue.Mount(&QueueMount{
			Settings: &a.cfg.Settings, Resources: a.cfg.Resources, Deps: deps,
			API: api, App: r, Acquire: limit.acquire,
		})
		if err != nil {
			return nil, err
		}
	}

	apidocs.Finish(api, DocPolicy(&a.cfg.Settings, a.PublicPaths()))

	if a.cfg.Handler != nil {
		// Like chi's Mount("/", Handler), but the operations stay free to
		// use any path: only what they do not claim goes to Handler. A chi
		// Handler shares the route context and so routes on the same path
		// (relative to a mount point, if any).
		// Docs paths are served without credentials; what the docs do not
		// serve under them is 404, never the user's handler unauthenticated.
		handler := limit.handler(a.cfg.Handler)
		fallback := func(w http.ResponseWriter, req *http.Request) {
			if apidocs.Owns(chi.RouteContext(req.Context()).RoutePath) || apidocs.Owns(req.URL.Path) {
				problem.Write(w, req, http.StatusNotFound, "")
				return
			}
			handler.ServeHTTP(w, req)
		}
		r.NotFound(fallback)
		r.MethodNotAllowed(fallback)
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

var (
	// ErrNoCaller is the error of Submit in a request without a verified
	// caller: an environment with Auth.Disabled, or an excluded path.
	ErrNoCaller = errors.New("no verified caller to run the task as")
	// ErrNoDispatcher is the error of Submit outside a request served by an
	// AppEnvironment, or in an App without a Dispatcher.
	ErrNoDispatcher = errors.New("no dispatcher: Submit needs a request of an AppEnvironment in an App with a Dispatcher")
	// ErrTaskNotRegistered is the error of Submit for a task missing from
	// the App's registry (or registered in another version), which no
	// node could run.
	ErrTaskNotRegistered = errors.New("task not registered in the App")
)

type depsKey struct{}

// SubmitOptions tune Submit. The zero value is a good default.
type SubmitOptions struct {
	// IdempotencyKey makes a retried submit return the first run; keys
	// are scoped per caller. A reused key with other inputs, priority or
	// webhook is dispatch.ErrIdempotencyConflict.
	IdempotencyKey string
	// Priority orders queued runs; higher first.
	Priority int
	// Webhook is a completion callback URL; WebhookEvents filters
	// callbacks ("start", "completed"; empty means completed).
	Webhook       string
	WebhookEvents []string
}

// Submit starts task as the caller of the current request, from inside a
// handler or function endpoint of an AppEnvironment: the run's owner is
// the request's verified Identity, so the run shows up in that caller's
// GET /runs of the webhook environment, and other callers get 404 for it,
// exactly as if the caller had used POST /run-task. This is the Flyte
// custom-FastAPI-app pattern of running a task on behalf of the user.
//
// The run is stored durably before Submit returns. It fails with
// ErrNoCaller, ErrNoDispatcher or ErrTaskNotRegistered (see each), or with
// what the dispatcher returns. Text that cannot be stored as it is (in the
// inputs, the options) fails with a *dispatch.TextError that is also a
// huma 422 naming it ("inputs.message", "webhook"), so a function endpoint
// that returns the error answers the caller 422; a reused
// IdempotencyKey with other inputs or options is
// dispatch.ErrIdempotencyConflict.
func Submit[I, O any](ctx context.Context, task *tasks.Task[I, O], inputs I, opts *SubmitOptions) (*tasks.Run, error) {
	if opts == nil {
		opts = &SubmitOptions{}
	}
	deps, _ := ctx.Value(depsKey{}).(*Deps)
	if deps == nil || deps.Dispatcher == nil {
		return nil, ErrNoDispatcher
	}
	id, ok := middleware.IdentityFromContext(ctx)
	if !ok || id.Subject == "" {
		return nil, ErrNoCaller
	}
	def := task.Definition()
	if deps.Registry == nil {
		return nil, fmt.Errorf("%w: %s", ErrTaskNotRegistered, def.ID())
	}
	if reg, ok := deps.Registry.Lookup(def.Project, def.Domain, def.Name); !ok || reg.Version != def.Version {
		return nil, fmt.Errorf("%w: %s version %s", ErrTaskNotRegistered, def.ID(), def.Version)
	}
	events, err := edge.WebhookParams(opts.Webhook, opts.WebhookEvents)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	raw, err := json.Marshal(inputs)
	if err != nil {
		return nil, fmt.Errorf("inputs of %s: %w", def.ID(), err)
	}
	run, _, err := deps.Dispatcher.Submit(ctx, dispatch.SubmitRequest{
		Task:           def,
		Inputs:         raw,
		Caller:         id,
		IdempotencyKey: opts.IdempotencyKey,
		Priority:       opts.Priority,
		Webhook:        opts.Webhook,
		WebhookEvents:  events,
	})
	if err != nil {
		return nil, edge.TextErrorProblem(err)
	}
	return run, nil
}
