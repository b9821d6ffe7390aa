package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/middleware"
)

// SubjectHeader carries the verified caller's subject to a proxied server.
// The proxy always removes the header from incoming requests first, so the
// server can trust it as long as nothing but the proxy reaches its port.
const SubjectHeader = "X-Taskgate-Subject"

var (
	// ErrStartup is the error when a server's process does not
	// answer on its port within StartupTimeout, or exits before it does.
	ErrStartup = errors.New("server did not start")
	// ErrPortInUse is the error when something already answers on the
	// server's port before its process starts.
	ErrPortInUse = errors.New("server port already in use")
	// ErrStarted is the error of Start on a running server.
	ErrStarted = errors.New("server already started")
)

// Config configures a server environment.
type Config struct {
	environments.Settings
	// Command is the program and its arguments; Command[0] is looked up in
	// PATH. Required.
	Command []string
	// Port the server listens on, on Host. Required, except for a held
	// server, whose replicas each get a free port when it is 0. The
	// process also gets it as $PORT.
	Port int
	// Host the server listens on. Default 127.0.0.1. Keep the server on
	// loopback: the proxy in front is what checks credentials.
	Host string
	// StartupTimeout bounds the wait for the port to answer after a start
	// or restart. Default 60 s.
	StartupTimeout time.Duration
	// Env adds KEY=VALUE entries to the process environment, which is
	// otherwise this process's environment without TASKGATE_* variables
	// (they hold tokens and secrets), plus PORT.
	Env []string
	// Dir is the working directory; "" is this process's.
	Dir string
	// StopGracePeriod is how long a stopping server has between SIGTERM
	// and SIGKILL. Default 10 s.
	StopGracePeriod time.Duration
	// RestartBackoff is the wait before restarting a server that exited;
	// it doubles after each failed restart up to MaxRestartBackoff, and
	// starts over once a server stayed up longer than MaxRestartBackoff.
	// Defaults 500 ms and 30 s.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration

	// Resources, when set (a GPU, CPU, memory), are held through the
	// App's scheduler for as long as the server runs: the server is
	// "held" (see Environment). It needs an App with a Dispatcher.
	Resources environments.Resources
	// Replicas of a held server; setting them holds the server even
	// without Resources. The zero value is one replica.
	Replicas Replicas
	// Priority of the replicas among queued runs; higher first.
	Priority int
}

// Environment is a server environment: it starts a program that serves
// HTTP on a port and reverse-proxies the environment's requests to it,
// behind the environment's auth and limits: Modal's @web_server. WebSocket
// upgrades and streamed responses pass through; the caller's credentials
// are forwarded as sent (but for a browser session's cookie, the App's
// own), and the verified subject in SubjectHeader.
//
// Build starts nothing. Start launches the process in its own process
// group (its output goes to the Deps' logger, line by line), waits until
// the port answers, and keeps it running: a process that exits is started
// again with exponential backoff. Its death is noticed at once, even when a
// child of it still holds its output, and what is left of its process
// group is killed before the restart. While no process answers, requests
// get 503 problem+json with Retry-After. Stop sends SIGTERM to the whole group,
// then SIGKILL after StopGracePeriod.
//
// When Config leaves Settings.OnStart and OnStop nil they are set to
// Start and Stop, so an App starts and stops the server with its
// lifecycle; a user who sets their own hooks must call Start and Stop from
// them.
//
// On Windows, where there is no SIGTERM, Stop sends CTRL_BREAK_EVENT
// (which a Go server sees as os.Interrupt) and kills the process after
// StopGracePeriod, or at once when the break cannot be sent; the children
// it started are not reached.
type Environment struct {
	cfg       Config
	transport *http.Transport
	proxy     *httputil.ReverseProxy // to Port, unless held
	up        atomic.Bool            // a process runs and its port answered (unless held)
	pool      *pool                  // the replicas of a held server, from the first Build

	logger atomic.Pointer[slog.Logger]

	mu   sync.Mutex
	urls environments.URLSettings

	// life serializes Start and Stop; it is held while Start waits for the
	// port, so a Stop during a Start waits for it.
	life   sync.Mutex
	cancel context.CancelFunc // stops the supervisor; nil when not started
	done   chan struct{}      // closed when the supervisor returned
	kill   chan struct{}      // closed by Stop to skip the grace period
}

var (
	_ environments.Environment  = (*Environment)(nil)
	_ environments.PublicPather = (*Environment)(nil)
)

// New checks cfg and applies its defaults.
func New(cfg Config) (*Environment, error) {
	if err := cfg.Settings.Validate(); err != nil {
		return nil, err
	}
	if cfg.Label != "" {
		if err := environments.ValidateLabel(cfg.Label); err != nil {
			return nil, fmt.Errorf("environment %s: %w", cfg.Name, err)
		}
	}
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, fmt.Errorf("server %s: Command is required", cfg.Name)
	}
	if err := checkHeld(&cfg); err != nil {
		return nil, err
	}
	if (cfg.Port != 0 || !held(&cfg)) && (cfg.Port < 1 || cfg.Port > 65535) {
		return nil, fmt.Errorf("server %s: Port %d outside 1-65535", cfg.Name, cfg.Port)
	}
	for _, kv := range cfg.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("server %s: Env entry %q is not KEY=VALUE", cfg.Name, kv)
		}
	}
	if cfg.StartupTimeout < 0 || cfg.StopGracePeriod < 0 || cfg.RestartBackoff < 0 || cfg.MaxRestartBackoff < 0 {
		return nil, fmt.Errorf("server %s: negative duration", cfg.Name)
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	cfg.StartupTimeout = orDefault(cfg.StartupTimeout, 60*time.Second)
	cfg.StopGracePeriod = orDefault(cfg.StopGracePeriod, 10*time.Second)
	cfg.RestartBackoff = orDefault(cfg.RestartBackoff, 500*time.Millisecond)
	cfg.MaxRestartBackoff = max(orDefault(cfg.MaxRestartBackoff, 30*time.Second), cfg.RestartBackoff)
	if cfg.Title == "" {
		cfg.Title = cfg.Name
	}

	s := &Environment{cfg: cfg}
	target := &url.URL{Scheme: "http", Host: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))}
	s.logger.Store(slog.Default())
	if s.cfg.OnStart == nil {
		s.cfg.OnStart = s.Start
	}
	if s.cfg.OnStop == nil {
		s.cfg.OnStop = s.Stop
	}
	s.transport = loopbackTransport()
	s.proxy = s.proxyTo(target)
	return s, nil
}

// MustNew is New that panics on error.
func MustNew(cfg Config) *Environment {
	s, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return s
}

// orDefault returns d, or def when d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// loopbackTransport reaches the server directly: no proxy from the
// environment, keep-alive connections sized for one busy upstream, and no
// response timeout, which would cut long polls and streams.
func loopbackTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Settings implements environments.Environment.
func (s *Environment) Settings() *environments.Settings { return &s.cfg.Settings }

// Build implements environments.Environment: the reverse proxy to the
// server. It starts nothing; see Start.
func (s *Environment) Build(deps *environments.Deps) (http.Handler, error) {
	if deps.Logger != nil {
		s.logger.Store(deps.Logger)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.urls = deps.URLs
	if s.held() && s.pool == nil {
		p, err := s.newPool(deps)
		if err != nil {
			return nil, err
		}
		s.pool = p
	}
	return http.HandlerFunc(s.serve), nil
}

// PublicPaths implements environments.PublicPather: /health is served
// without credentials and outside the in-flight limit.
func (s *Environment) PublicPaths() []string { return []string{"/health"} }

// URL returns the environment's public URL under the App's URL settings,
// or "" before the first Build or without a base domain.
func (s *Environment) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return environments.URLFor(s.urls, &s.cfg.Settings)
}

// Running reports whether a server process runs and answered on its port;
// for a held server, whether a replica answers.
func (s *Environment) Running() bool {
	if s.held() {
		return s.pool != nil && s.pool.ready()
	}
	return s.up.Load()
}

func (s *Environment) serve(w http.ResponseWriter, r *http.Request) {
	if s.held() {
		s.pool.serve(w, r)
		return
	}
	if !s.up.Load() {
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, http.StatusServiceUnavailable, "the server is not running")
		return
	}
	s.proxy.ServeHTTP(w, r)
}

// proxyTo is a reverse proxy to target.
func (s *Environment) proxyTo(target *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:      func(pr *httputil.ProxyRequest) { s.rewrite(pr, target) },
		Transport:    s.transport,
		ErrorHandler: s.proxyError,
		// Responses of unknown length (chunked, event streams) are flushed
		// at every write by ReverseProxy already; the rest stream in
		// buffered chunks.
	}
}

func (s *Environment) rewrite(pr *httputil.ProxyRequest, target *url.URL) {
	pr.SetURL(target)
	// A CGI or WSGI server reads X_Taskgate_Subject as X-Taskgate-Subject
	// (both become HTTP_X_TASKGATE_SUBJECT, values joined): drop every
	// spelling of the headers this proxy sets, as nginx drops underscored
	// names by default. (The dashed X-Forwarded-* are removed by
	// ReverseProxy before Rewrite.)
	for k := range pr.Out.Header {
		if !strings.Contains(k, "_") {
			continue
		}
		switch n := http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-")); {
		case n == SubjectHeader, n == "Forwarded", strings.HasPrefix(n, "X-Forwarded-"):
			delete(pr.Out.Header, k)
		}
	}
	pr.SetXForwarded()
	dropSessionCookies(pr.Out)
	pr.Out.Header.Del(SubjectHeader)
	if id, ok := middleware.IdentityFromContext(pr.In.Context()); ok && id.Subject != "" {
		pr.Out.Header.Set(SubjectHeader, id.Subject)
	}
}

// dropSessionCookies removes the browser sessions' cookies (a session id,
// middleware.IsSessionID) from r: a session is the App's own credential,
// for its pages and API; the program behind the proxy has no use for it,
// and anything that logs its requests' headers would keep it in clear.
// Other cookies, the caller's tokens among them, go on as sent.
func dropSessionCookies(r *http.Request) {
	cookies := r.Cookies()
	if !slices.ContainsFunc(cookies, func(c *http.Cookie) bool { return middleware.IsSessionID(c.Value) }) {
		return
	}
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if !middleware.IsSessionID(c.Value) {
			r.AddCookie(c)
		}
	}
}

func (s *Environment) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		problem.Write(w, r, http.StatusRequestEntityTooLarge, err.Error())
		return
	}
	if r.Context().Err() != nil {
		return // the client left; nobody reads an answer
	}
	s.log().LogAttrs(r.Context(), slog.LevelWarn, "proxied server did not answer",
		slog.String("environment", s.cfg.Name), slog.String("method", r.Method),
		slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	problem.Write(w, r, http.StatusBadGateway, "the server did not answer")
}

func (s *Environment) log() *slog.Logger { return s.logger.Load() }

// Start launches the server and returns once its port answers. ctx bounds
// only that wait: the process outlives it, until Stop. It fails with
// ErrPortInUse when something already answers on the port, and with
// ErrStartup when the process exits first or StartupTimeout passes.
func (s *Environment) Start(ctx context.Context) error {
	if s.held() {
		return s.startHeld(ctx)
	}
	s.life.Lock()
	defer s.life.Unlock()
	if s.cancel != nil {
		return fmt.Errorf("server %s: %w", s.cfg.Name, ErrStarted)
	}
	sup := s.supervisor(s.cfg.Port, nil, s.log(), s.up.Store)
	if sup.dial(ctx) == nil {
		return fmt.Errorf("server %s: %w: %s answers before the server started", s.cfg.Name, ErrPortInUse, sup.addr)
	}
	p, err := sup.launch()
	if err != nil {
		return err
	}
	if err := sup.waitReady(ctx, p); err != nil {
		sup.terminate(p, nil)
		return err
	}
	s.up.Store(true)
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.done, s.kill = cancel, make(chan struct{}), make(chan struct{})
	go sup.supervise(sctx, p, s.done, s.kill)
	return nil
}

// supervisor runs the command on port, with env before Config.Env, and
// tells setUp whether it answers.
func (s *Environment) supervisor(port int, env []string, logger *slog.Logger, setUp func(bool)) *supervisor {
	return &supervisor{
		cfg: &s.cfg, logger: logger.With(slog.String("environment", s.cfg.Name)),
		port: port, addr: net.JoinHostPort(s.cfg.Host, strconv.Itoa(port)), env: env, setUp: setUp,
	}
}

// Stop stops the server: SIGTERM to its process group, SIGKILL after
// StopGracePeriod or as soon as ctx ends. It returns once the process
// exited; stopping a server that is not running does nothing.
func (s *Environment) Stop(ctx context.Context) error {
	if s.held() {
		return s.stopHeld(ctx)
	}
	s.life.Lock()
	defer s.life.Unlock()
	cancel, done, kill := s.cancel, s.done, s.kill
	s.cancel = nil
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		close(kill)
		<-done
		return fmt.Errorf("server %s: killed before its grace period ended: %w", s.cfg.Name, ctx.Err())
	}
}
