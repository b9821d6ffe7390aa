package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
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
	// Port the server listens on, on Host. Required. The process also gets
	// it as $PORT.
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
}

// Environment is a server environment: it starts a program that serves
// HTTP on a port and reverse-proxies the environment's requests to it,
// behind the environment's auth and limits: Modal's @web_server. WebSocket
// upgrades and streamed responses pass through; the caller's credentials
// are forwarded as sent, and the verified subject in SubjectHeader.
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
	cfg    Config
	target *url.URL
	proxy  *httputil.ReverseProxy
	up     atomic.Bool // a process runs and its port answered

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
	if cfg.Port < 1 || cfg.Port > 65535 {
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

	s := &Environment{
		cfg:    cfg,
		target: &url.URL{Scheme: "http", Host: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))},
	}
	s.logger.Store(slog.Default())
	if s.cfg.OnStart == nil {
		s.cfg.OnStart = s.Start
	}
	if s.cfg.OnStop == nil {
		s.cfg.OnStop = s.Stop
	}
	s.proxy = &httputil.ReverseProxy{
		Rewrite:      s.rewrite,
		Transport:    loopbackTransport(),
		ErrorHandler: s.proxyError,
		// Responses of unknown length (chunked, event streams) are flushed
		// at every write by ReverseProxy already; the rest stream in
		// buffered chunks.
	}
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

// Running reports whether a server process runs and answered on its port.
func (s *Environment) Running() bool { return s.up.Load() }

func (s *Environment) serve(w http.ResponseWriter, r *http.Request) {
	if !s.up.Load() {
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, http.StatusServiceUnavailable, "the server is not running")
		return
	}
	s.proxy.ServeHTTP(w, r)
}

func (s *Environment) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(s.target)
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
	pr.Out.Header.Del(SubjectHeader)
	if id, ok := middleware.IdentityFromContext(pr.In.Context()); ok && id.Subject != "" {
		pr.Out.Header.Set(SubjectHeader, id.Subject)
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
	s.life.Lock()
	defer s.life.Unlock()
	if s.cancel != nil {
		return fmt.Errorf("server %s: %w", s.cfg.Name, ErrStarted)
	}
	if s.dial(ctx) == nil {
		return fmt.Errorf("server %s: %w: %s answers before the server started", s.cfg.Name, ErrPortInUse, s.target.Host)
	}
	p, err := s.launch()
	if err != nil {
		return err
	}
	if err := s.waitReady(ctx, p); err != nil {
		s.terminate(p, nil)
		return err
	}
	s.up.Store(true)
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.done, s.kill = cancel, make(chan struct{}), make(chan struct{})
	go s.supervise(sctx, p, s.done, s.kill)
	return nil
}

// Stop stops the server: SIGTERM to its process group, SIGKILL after
// StopGracePeriod or as soon as ctx ends. It returns once the process
// exited; stopping a server that is not running does nothing.
func (s *Environment) Stop(ctx context.Context) error {
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

// process is one run of the server's command.
type process struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{} // closed once Wait returned
	err     error         // Wait's result, set before exited closes
}

// launch starts the command in a process group of its own, so that Stop
// reaches the children a shell or a reloader starts.
func (s *Environment) launch() (*process, error) {
	logger := s.log().With(slog.String("environment", s.cfg.Name))
	cmd := exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...)
	cmd.Dir = s.cfg.Dir
	cmd.Env = s.environ()
	// The output goes through pipes of our own, not exec's: exec's Wait
	// returns only once its pipes close, and a child of the server that
	// keeps them open would hide the server's death (until WaitDelay).
	// With plain files Wait watches the process alone; the readers end
	// when the last holder of the pipes is gone, at the latest when the
	// group's leftovers are killed.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("server %s: %w: %w", s.cfg.Name, ErrStartup, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("server %s: %w: %w", s.cfg.Name, ErrStartup, err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	newProcessGroup(cmd)
	err = cmd.Start()
	// The process has its copies; ours would keep the readers from ever
	// seeing the end.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("server %s: %w: %w", s.cfg.Name, ErrStartup, err)
	}
	logger.Info("server process started", slog.Int("pid", cmd.Process.Pid), slog.String("command", cmd.Path))
	var readers sync.WaitGroup
	readers.Go(func() { logLines(outR, &lineLogger{logger: logger, stream: "stdout"}) })
	readers.Go(func() { logLines(errR, &lineLogger{logger: logger, stream: "stderr"}) })
	p := &process{cmd: cmd, started: time.Now(), exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
		// A child that left the group (setsid) is not killed with it and
		// may hold the pipes as long as it lives: stop reading them after
		// the grace period, as exec's WaitDelay would.
		cut := time.AfterFunc(s.cfg.StopGracePeriod, func() {
			outR.Close()
			errR.Close()
		})
		readers.Wait()
		cut.Stop()
	}()
	return p, nil
}

// logLines logs what r yields until every writer closed it (or launch
// closed it, see there).
func logLines(r *os.File, l *lineLogger) {
	_, _ = io.Copy(l, r)
	l.flush()
	r.Close()
}

// environ is the process environment: ours without TASKGATE_* variables,
// then PORT, then Env (a later entry wins).
func (s *Environment) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASKGATE_") {
			env = append(env, kv)
		}
	}
	env = append(env, "PORT="+strconv.Itoa(s.cfg.Port))
	return append(env, s.cfg.Env...)
}

// dial reports whether the server's port accepts a connection.
func (s *Environment) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", s.target.Host)
	if err != nil {
		return err
	}
	return c.Close()
}

// waitReady polls the port until it answers, the process exits,
// StartupTimeout passes or ctx ends.
func (s *Environment) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartupTimeout)
	defer cancel()
	wait := 10 * time.Millisecond
	for {
		if s.dial(ctx) == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("server %s: %w: the process exited before port %d answered: %w",
				s.cfg.Name, ErrStartup, s.cfg.Port, p.err)
		case <-ctx.Done():
			return fmt.Errorf("server %s: %w: port %d did not answer within %v: %w",
				s.cfg.Name, ErrStartup, s.cfg.Port, s.cfg.StartupTimeout, ctx.Err())
		case <-time.After(wait):
			wait = min(2*wait, 250*time.Millisecond)
		}
	}
}

// terminate stops p's process group: SIGTERM, then SIGKILL after the grace
// period or when kill closes. It returns once p exited.
func (s *Environment) terminate(p *process, kill <-chan struct{}) {
	signalGroup(p.cmd, true)
	t := time.NewTimer(s.cfg.StopGracePeriod)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
	case <-kill:
	}
	signalGroup(p.cmd, false)
	<-p.exited
}

// supervise restarts the server whenever it exits, until ctx ends; then it
// stops the current process.
func (s *Environment) supervise(ctx context.Context, p *process, done, kill chan struct{}) {
	defer close(done)
	defer s.up.Store(false)
	logger := s.log().With(slog.String("environment", s.cfg.Name))
	backoff := s.cfg.RestartBackoff
	for {
		select {
		case <-ctx.Done():
			s.up.Store(false)
			s.terminate(p, kill)
			return
		case <-p.exited:
		}
		s.up.Store(false)
		// Reap what the exited leader left behind in its group.
		signalGroup(p.cmd, false)
		if time.Since(p.started) > s.cfg.MaxRestartBackoff {
			backoff = s.cfg.RestartBackoff
		}
		logger.Warn("server process exited; restarting",
			slog.String("status", exitStatus(p.err)), slog.Duration("backoff", backoff))
		for {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, s.cfg.MaxRestartBackoff)
			np, err := s.launch()
			if err != nil {
				logger.Error("server restart failed", slog.String("error", err.Error()))
				continue
			}
			if err := s.waitReady(ctx, np); err != nil {
				s.terminate(np, kill)
				if ctx.Err() != nil {
					return
				}
				logger.Error("server restart failed", slog.String("error", err.Error()))
				continue
			}
			p = np
			s.up.Store(true)
			logger.Info("server process answers again", slog.Int("pid", p.cmd.Process.Pid))
			break
		}
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// lineLogger logs what a process writes, one record per line. A line
// longer than maxLogLine is logged in pieces, so a process that never
// writes a newline cannot make it buffer without bound.
type lineLogger struct {
	logger *slog.Logger
	stream string
	buf    []byte
}

const maxLogLine = 16 << 10

func (l *lineLogger) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLogLine - len(l.buf)
			if len(p) < room {
				l.buf = append(l.buf, p...)
				break
			}
			l.buf = append(l.buf, p[:room]...)
			p = p[room:]
			l.flush()
			continue
		}
		l.buf = append(l.buf, p[:i]...)
		p = p[i+1:]
		l.flush()
	}
	return n, nil
}

// flush logs the buffered line, if any. Called by the stream's reader
// only (logLines).
func (l *lineLogger) flush() {
	line := strings.TrimRight(string(l.buf), "\r")
	l.buf = l.buf[:0]
	if line == "" {
		return
	}
	l.logger.Info(line, slog.String("stream", l.stream))
}
