package framework

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/internal/apidocs"
	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/internal/telemetry"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

// App serves environments over HTTP. Like http.Server, it is a config struct:
// set the fields, then call Run (or Handler and Start/Stop yourself). Fields
// must not change after the first call.
type App struct {
	// Addr is the listen address; default "127.0.0.1:8080".
	Addr string
	// Title and Version head the OpenAPI documents; defaults "taskgate" and
	// the main module's build version ("dev" when the build stamped none).
	Title   string
	Version string
	// Logger receives structured logs, with one access log line per
	// request at info; default slog.Default(). Tokens, secrets and query
	// strings are never logged.
	Logger *slog.Logger
	// Metrics receives the App's Prometheus metrics (requests, latency,
	// in flight, refusals by reason; Go and process); a service may
	// register its own on it. nil: none, unless MetricsAddr is set, which
	// makes one.
	Metrics *prometheus.Registry
	// MetricsAddr is the operator's listen address, apart from Addr:
	// GET /metrics (Metrics) and /debug/pprof/. Keep it private; "" serves
	// neither. FromEnv sets it from TASKGATE_METRICS_ADDR.
	MetricsAddr string
	// TracerProvider starts a server span per request, child of an
	// incoming W3C traceparent; nil: no spans (the global provider is not
	// used). FromEnv makes one from the OTEL_* variables.
	TracerProvider trace.TracerProvider
	// Environments served by the App; at least one. Requests pick one by
	// Host (URL label or custom domain), then by the longest PathPrefix.
	Environments []environments.Environment
	// Registry of tasks shared by the environments; default an empty one.
	Registry *tasks.Registry
	// Dispatcher runs tasks; required by environments that submit runs.
	Dispatcher *dispatch.Dispatcher
	// Authenticator verifies credentials for every environment.
	Authenticator middleware.Authenticator
	// Extractors find credentials; default Bearer, fal's Key, then the
	// session cookie.
	Extractors []middleware.Extractor
	// Login signs browsers in at /auth/login, /auth/callback and
	// /auth/logout, served at the root of every host; off while
	// Login.Sessions is nil (see LoginConfig).
	Login LoginConfig
	// AdminGroup members see every run, /nodes and /queue; default "admins".
	AdminGroup string
	// NoConsole turns off the web console (/console) of every webhook
	// environment; FromEnv sets it from TASKGATE_CONSOLE=off.
	NoConsole bool
	// URLs are the rules of environments' public URLs.
	URLs environments.URLSettings
	// TrustedProxies (CIDRs) may set X-Forwarded-For; with none, the client
	// IP is the TCP peer. chi's RealIP is not used: it trusts any client.
	TrustedProxies []string
	// OnStart hooks run in order before serving; OnStop hooks run in reverse
	// order after serving stopped, like an ASGI lifespan. An OnStop hook runs
	// only if its OnStart counterpart (same index, when given) succeeded.
	OnStart []func(ctx context.Context) error
	OnStop  []func(ctx context.Context) error
	// Server timeouts; zero values take the defaults below.
	ReadHeaderTimeout time.Duration // default 10 s
	ReadTimeout       time.Duration // default 5 min: bodies may be large
	IdleTimeout       time.Duration // default 2 min
	MaxHeaderBytes    int           // default 64 KiB
	// BodyTimeout bounds how long a request body may take to arrive once
	// its headers did (middleware.BodyTimeout); default 60 s, at most
	// ReadTimeout. Answers that need no body (401, 404, 429…) go out at
	// once, without it.
	BodyTimeout time.Duration
	// ShutdownTimeout bounds how long in-flight requests may finish; default 30 s.
	ShutdownTimeout time.Duration
	// ListenerCloseDelay keeps the listener open after a stop signal (and
	// after the Dispatcher drained its runs), answering 503, so a load
	// balancer notices before connections are refused; default 0.
	ListenerCloseDelay time.Duration

	handler http.Handler
	// holder places environments' replicas (environments.Holder); nil
	// without a Dispatcher. agentOnly: this process runs a node agent
	// only (FromEnv's role agent), so it runs replicas but manages none.
	holder    *holder
	agentOnly bool
	// phase is where shutdown stands: serving, drainingRuns or refusing.
	phase   atomic.Int32
	started int // how many app OnStart hooks succeeded
	envUp   []environments.Environment
}

// Shutdown phases (App.phase).
const (
	serving int32 = iota
	// drainingRuns: a stop signal came and the Dispatcher drains its
	// node's runs. Requests are still served (reads, waits, aborts), but
	// the Dispatcher refuses submits (503 with Retry-After) and /ready
	// says draining.
	drainingRuns
	// refusing: every new request gets 503 while the listener closes.
	refusing
)

func (a *App) validate() error {
	if a.Addr == "" {
		a.Addr = "127.0.0.1:8080"
	}
	if a.Title == "" {
		a.Title = "taskgate"
	}
	if a.Version == "" {
		a.Version = apidocs.BuildVersion()
	}
	if a.Logger == nil {
		a.Logger = slog.Default()
	}
	if a.Registry == nil {
		a.Registry = tasks.NewRegistry()
	}
	if a.AdminGroup == "" {
		a.AdminGroup = "admins"
	}
	if a.ReadHeaderTimeout == 0 {
		a.ReadHeaderTimeout = 10 * time.Second
	}
	if a.ReadTimeout == 0 {
		a.ReadTimeout = 5 * time.Minute
	}
	if a.BodyTimeout == 0 {
		a.BodyTimeout = 60 * time.Second
	}
	if a.BodyTimeout < 0 {
		return errors.New("framework: App.BodyTimeout must not be negative")
	}
	if a.IdleTimeout == 0 {
		a.IdleTimeout = 2 * time.Minute
	}
	if a.Metrics == nil && a.MetricsAddr != "" {
		a.Metrics = prometheus.NewRegistry()
	}
	if a.MaxHeaderBytes == 0 {
		a.MaxHeaderBytes = 64 << 10
	}
	if a.ShutdownTimeout == 0 {
		a.ShutdownTimeout = 30 * time.Second
	}
	if len(a.Environments) == 0 {
		return errors.New("framework: App.Environments is empty")
	}
	names := map[string]bool{}
	prefixes := map[string]string{}
	for _, e := range a.Environments {
		s := e.Settings()
		if names[s.Name] {
			return fmt.Errorf("framework: two environments named %q", s.Name)
		}
		names[s.Name] = true
		if len(s.CustomDomains) == 0 {
			if other, dup := prefixes[s.PathPrefix]; dup {
				return fmt.Errorf("framework: environments %q and %q share PathPrefix %q", other, s.Name, s.PathPrefix)
			}
			prefixes[s.PathPrefix] = s.Name
		}
	}
	for _, p := range a.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			return fmt.Errorf("framework: TrustedProxies: %w", err)
		}
	}
	if len(a.OnStop) > 0 && len(a.OnStart) > 0 && len(a.OnStop) != len(a.OnStart) {
		return errors.New("framework: OnStart and OnStop pair by index; give both the same length, or only one of them")
	}
	return nil
}

// Handler builds the App's handler once (validating the configuration) and
// returns it. Run calls it; tests may call it directly with httptest.
func (a *App) Handler() (http.Handler, error) {
	if a.handler != nil {
		return a.handler, nil
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	loginH, sessions, err := a.loginHandler()
	if err != nil {
		return nil, err
	}
	auth := a.Authenticator
	if sessions != nil {
		// Sessions first: it refuses any other credential without a look
		// at the store, and it is not behind the identity cache, so that
		// a signed-out session stops working at once.
		auth = middleware.Chain(sessions)
		if a.Authenticator != nil {
			auth = middleware.Chain(sessions, a.Authenticator)
		}
	}
	deps := &environments.Deps{
		Logger:        a.Logger,
		Registry:      a.Registry,
		Dispatcher:    a.Dispatcher,
		Authenticator: auth,
		Extractors:    a.Extractors,
		AdminGroup:    a.AdminGroup,
		Version:       a.Version,
		URLs:          a.URLs,
		NoConsole:     a.NoConsole,
	}
	if a.Dispatcher != nil {
		a.holder = &holder{reg: a.Registry, d: a.Dispatcher, managed: !a.agentOnly}
		deps.Holder = a.holder
	}
	if deps.URLs.App == "" {
		deps.URLs.App = a.Title
	}
	mounted := make([]mountedEnv, 0, len(a.Environments))
	for _, e := range a.Environments {
		h, err := e.Build(deps)
		if err != nil {
			return nil, fmt.Errorf("framework: environment %s: %w", e.Settings().Name, err)
		}
		h, err = environments.Wrap(e, deps, h)
		if err != nil {
			return nil, fmt.Errorf("framework: environment %s: %w", e.Settings().Name, err)
		}
		mounted = append(mounted, mountedEnv{env: e, h: telemetry.Environment(e.Settings().Name)(h)})
	}
	hosts, err := environments.NewHostRouter(deps.URLs, a.Environments)
	if err != nil {
		return nil, fmt.Errorf("framework: %w", err)
	}

	obs, err := a.observer()
	if err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	// First: its request id, span, metrics and access log cover every
	// layer after it.
	r.Use(obs.Middleware)
	if len(a.TrustedProxies) > 0 {
		prefixes := make([]string, len(a.TrustedProxies))
		for i, p := range a.TrustedProxies {
			prefixes[i], _ = parsePrefix(p) // validated above
		}
		r.Use(chimw.ClientIPFromXFF(prefixes...))
	} else {
		r.Use(chimw.ClientIPFromRemoteAddr)
	}
	bodyTimeout := a.BodyTimeout
	if a.ReadTimeout > 0 {
		bodyTimeout = min(bodyTimeout, a.ReadTimeout)
	}
	r.Use(middleware.BodyTimeout(bodyTimeout))
	r.Use(a.recoverer)
	r.Use(a.refuseWhenStopping)
	r.Get("/ready", a.ready)
	r.Head("/ready", a.ready)
	if loginH != nil {
		r.Handle("/auth/*", loginH)
	}
	r.Handle("/*", a.route(hosts, mounted))
	a.handler = r
	return r, nil
}

type mountedEnv struct {
	env environments.Environment
	h   http.Handler
}

// route picks the environment: Host first (URL label, custom domain), then
// the longest matching PathPrefix, whose prefix is stripped.
func (a *App) route(hosts *environments.HostRouter, envs []mountedEnv) http.Handler {
	byEnv := map[environments.Environment]http.Handler{}
	byEnvStripped := map[environments.Environment]http.Handler{}
	var prefixed []mountedEnv
	for _, m := range envs {
		byEnv[m.env] = m.h
		if p := m.env.Settings().PathPrefix; p != "" {
			byEnvStripped[m.env] = stripPrefix(p, m.h)
		}
		if len(m.env.Settings().CustomDomains) == 0 || m.env.Settings().PathPrefix != "" {
			prefixed = append(prefixed, m)
		}
	}
	// Longest prefix first, so /team-a/x is not taken by the root environment.
	sort.SliceStable(prefixed, func(i, j int) bool {
		return len(prefixed[i].env.Settings().PathPrefix) > len(prefixed[j].env.Settings().PathPrefix)
	})
	stripped := make([]http.Handler, len(prefixed))
	for i, m := range prefixed {
		stripped[i] = m.h
		if h, ok := byEnvStripped[m.env]; ok {
			stripped[i] = h
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e, ok := hosts.Match(r.Host); ok {
			// On its own host an environment is served at the root, and
			// also under its PathPrefix, since the URLs it hands out
			// (Location, status_url…) carry the prefix.
			if p := e.Settings().PathPrefix; p != "" && (r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/")) {
				byEnvStripped[e].ServeHTTP(w, r)
				return
			}
			byEnv[e].ServeHTTP(w, r)
			return
		}
		for i, m := range prefixed {
			p := m.env.Settings().PathPrefix
			if p == "" || r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/") {
				stripped[i].ServeHTTP(w, r)
				return
			}
		}
		problem.Write(w, r, http.StatusNotFound, "no environment serves this path")
	})
}

// stripPrefix is http.StripPrefix that maps the bare prefix to "/".
func stripPrefix(prefix string, h http.Handler) http.Handler {
	inner := http.StripPrefix(prefix, h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == prefix {
			r2 := r.Clone(r.Context())
			r2.URL.Path = prefix + "/"
			r2.URL.RawPath = ""
			inner.ServeHTTP(w, r2)
			return
		}
		inner.ServeHTTP(w, r)
	})
}

// recoverer turns a panic into a logged 500 problem+json. It replaces chi's
// Recoverer, which writes an empty text body and prints the stack to stderr
// outside slog; it keeps http.ErrAbortHandler's meaning as chi's does.
func (a *App) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
					panic(v)
				}
				id := chimw.GetReqID(r.Context())
				a.Logger.ErrorContext(r.Context(), "panic serving request",
					"panic", fmt.Sprint(v), "method", r.Method, "path", r.URL.Path, "request_id", id)
				problem.Write(w, r, http.StatusInternalServerError, problem.InternalDetail(id))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// refuseWhenStopping answers 503 to requests that arrive once the App
// refuses them (after the Dispatcher drained its runs, for
// ListenerCloseDelay and until the listener closed).
func (a *App) refuseWhenStopping(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.phase.Load() == refusing {
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", "1")
			problem.Write(w, r, http.StatusServiceUnavailable, "server is shutting down")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Start runs the App's OnStart hooks, then each environment's. If one fails,
// what already started is stopped in reverse order and the error returned.
func (a *App) Start(ctx context.Context) error {
	if _, err := a.Handler(); err != nil {
		return err
	}
	for i, f := range a.OnStart {
		if err := f(ctx); err != nil {
			_ = a.Stop(ctx)
			return fmt.Errorf("framework: OnStart hook %d: %w", i, err)
		}
		a.started = i + 1
	}
	if len(a.OnStart) == 0 {
		a.started = len(a.OnStop)
	}
	for _, e := range a.Environments {
		if f := e.Settings().OnStart; f != nil {
			if err := f(ctx); err != nil {
				_ = a.Stop(ctx)
				return fmt.Errorf("framework: environment %s OnStart: %w", e.Settings().Name, err)
			}
		}
		a.envUp = append(a.envUp, e)
	}
	return nil
}

// Stop runs the OnStop hooks of what started, in reverse order, and joins
// their errors.
func (a *App) Stop(ctx context.Context) error {
	var errs []error
	for i := len(a.envUp) - 1; i >= 0; i-- {
		if f := a.envUp[i].Settings().OnStop; f != nil {
			if err := f(ctx); err != nil {
				errs = append(errs, fmt.Errorf("environment %s OnStop: %w", a.envUp[i].Settings().Name, err))
			}
		}
	}
	a.envUp = nil
	for i := min(a.started, len(a.OnStop)) - 1; i >= 0; i-- {
		if err := a.OnStop[i](ctx); err != nil {
			errs = append(errs, fmt.Errorf("OnStop hook %d: %w", i, err))
		}
	}
	a.started = 0
	return errors.Join(errs...)
}

// Run starts the App, listens on Addr and serves until ctx is done or the
// process gets SIGINT or SIGTERM; then it shuts down. First the Dispatcher
// (if any) drains its runs: it stops taking runs and lets its node's
// running ones finish for its DrainTimeout while the API still answers
// (submits get 503, /ready says draining). Then new requests get 503 for
// ListenerCloseDelay, in-flight ones finish within ShutdownTimeout, and
// the OnStop hooks run.
func (a *App) Run(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := a.Handler(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.Addr)
	if err != nil {
		return fmt.Errorf("framework: listen: %w", err)
	}
	return a.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (tests use port 0).
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	h, err := a.Handler()
	if err != nil {
		ln.Close()
		return err
	}
	stopOperator, err := a.serveOperator()
	if err != nil {
		ln.Close()
		return err
	}
	defer stopOperator()
	if err := a.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	// Requests live in base, which Shutdown cancels: long-lived responses
	// (event streams, Prefer: wait) end at once instead of holding the
	// shutdown until ShutdownTimeout.
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: a.ReadHeaderTimeout,
		ReadTimeout:       a.ReadTimeout,
		IdleTimeout:       a.IdleTimeout,
		MaxHeaderBytes:    a.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	srv.RegisterOnShutdown(cancelBase)
	a.Logger.Info("serving", "addr", ln.Addr().String(), "environments", len(a.Environments))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		_ = a.Stop(context.WithoutCancel(ctx))
		return err
	case <-ctx.Done():
	}
	a.Logger.Info("shutting down", "listener_close_delay", a.ListenerCloseDelay.String(), "timeout", a.ShutdownTimeout.String())
	if a.Dispatcher != nil {
		// Replicas of environments never finish on their own: stop them
		// first, so that the drain does not wait for them in vain.
		if err := a.holder.stopAll(context.WithoutCancel(ctx)); err != nil {
			a.Logger.Warn("stop replicas", "err", err)
		}
		// The node's runs finish (or go back to the queue) while the API
		// still answers: callers waiting on them get their outcome.
		a.phase.Store(drainingRuns)
		a.Dispatcher.Drain(context.WithoutCancel(ctx))
		a.Logger.Info("runs drained")
	}
	a.phase.Store(refusing)
	if a.ListenerCloseDelay > 0 {
		time.Sleep(a.ListenerCloseDelay)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.ShutdownTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	if errors.Is(shutdownErr, context.DeadlineExceeded) {
		shutdownErr = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		shutdownErr = errors.Join(shutdownErr, err)
	}
	// The stop hooks get their own ShutdownTimeout: a shutdown that used
	// up its time must not leave them an expired context.
	stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), a.ShutdownTimeout)
	defer cancelStop()
	stopErr := a.Stop(stopCtx)
	return errors.Join(shutdownErr, stopErr)
}

// ShuttingDown reports whether shutdown has begun: a stop signal came.
func (a *App) ShuttingDown() bool { return a.phase.Load() != serving }

// parsePrefix accepts a CIDR or a single address (made a /32 or /128).
func parsePrefix(s string) (string, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.String(), nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return "", fmt.Errorf("%q is neither an IP nor a CIDR", s)
	}
	return netip.PrefixFrom(addr, addr.BitLen()).String(), nil
}
