package framework

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/internal/stdwebhook"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/callback"
	"github.com/taskgate/taskgate/tasks/discovery"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/scheduler"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/postgres"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// EnvConfig is a service's configuration as TASKGATE_* variables give it
// (see the table in README.md). This is the one place that reads them.
type EnvConfig struct {
	Addr        string // TASKGATE_ADDR
	DataDir     string // TASKGATE_DATA_DIR
	DatabaseURL string // TASKGATE_DATABASE_URL: postgres://… or sqlite:///path
	// AuthTokens is TASKGATE_AUTH_TOKENS: token=subject[:group+group],…
	AuthTokens   string
	OIDCIssuer   string // TASKGATE_OIDC_ISSUER
	OIDCAudience string // TASKGATE_OIDC_AUDIENCE
	AuthCookie   string // TASKGATE_AUTH_COOKIE
	// OIDCClientID and OIDCClientSecret are TASKGATE_OIDC_CLIENT_ID and
	// TASKGATE_OIDC_CLIENT_SECRET: the client browsers sign in through at
	// TASKGATE_OIDC_ISSUER (the secret is empty for a public client).
	// Without a client id, /auth/login takes a token instead.
	OIDCClientID     string
	OIDCClientSecret string
	// ExternalURL is TASKGATE_EXTERNAL_URL, the origin browsers reach the
	// service at (App.Login.ExternalURL); default "http://" + Addr.
	ExternalURL string
	// SessionTTL is TASKGATE_SESSION_TTL, a Go duration: how long a
	// browser session lasts; default 12h.
	SessionTTL time.Duration
	NodeGPUs   string // TASKGATE_NODE_GPUS, e.g. A100:4,H100:8
	NodeID     string // TASKGATE_NODE_ID
	Role       string // TASKGATE_ROLE: all, api, agent
	AdminGroup string // TASKGATE_ADMIN_GROUP
	// NoConsole is TASKGATE_CONSOLE=off: no web console at /console on
	// the webhook environments (on by default).
	NoConsole bool
	// WebhookSecret is TASKGATE_WEBHOOK_SECRET (whsec_…).
	WebhookSecret       string
	WebhookAllowPrivate bool // TASKGATE_WEBHOOK_ALLOW_PRIVATE
	// DeleteRunsAfter is TASKGATE_DELETE_RUNS_AFTER, a Go duration
	// ("720h"): terminal runs older than this are deleted whole. Unset or
	// 0 keeps them forever.
	DeleteRunsAfter time.Duration
	// MaxInterruptions is TASKGATE_MAX_INTERRUPTIONS: how many times a
	// run may be interrupted by a node's restart, loss or drain and go back
	// to the queue (default 10); as in dispatch.Config, negative means
	// none (the variable's 0).
	MaxInterruptions int
	// DrainTimeout is TASKGATE_DRAIN_TIMEOUT, a Go duration: how long a
	// stopping node lets its running runs finish before requeueing them
	// (default 30s); as in dispatch.Config, negative means not at all (the
	// variable's 0).
	DrainTimeout time.Duration
	// BodyTimeout is TASKGATE_BODY_TIMEOUT, a Go duration: how long a
	// request body may take to arrive (App.BodyTimeout); default 60 s.
	BodyTimeout time.Duration
	// MetricsAddr is TASKGATE_METRICS_ADDR (App.MetricsAddr): where
	// /metrics and /debug/pprof/ are served; default 127.0.0.1:9464, and
	// set but empty turns them off.
	MetricsAddr string
	// LogFormat is TASKGATE_LOG_FORMAT: "text" (default) or "json".
	LogFormat string
	// LogLevel is TASKGATE_LOG_LEVEL: debug, info (default), warn or error.
	LogLevel slog.Level
	// Traces is whether the OTEL_* variables ask for spans to be exported:
	// OTEL_TRACES_EXPORTER names an exporter other than "none", or an OTLP
	// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or …_TRACES_ENDPOINT) is set,
	// and OTEL_SDK_DISABLED is not true. The exporter itself reads the
	// variables (see README.md, "Operating taskgate").
	Traces bool
	// Metrics, when set, is the service's registry (App.Metrics), with or
	// without MetricsAddr; nil makes one when MetricsAddr is set.
	Metrics *prometheus.Registry
	// TracerProvider, when set, is used instead of the one the OTEL_*
	// variables describe (and is not shut down by the service): a service
	// with a provider of its own, a test's in-memory exporter.
	TracerProvider trace.TracerProvider
}

// LoadEnv reads EnvConfig from the process environment.
func LoadEnv() (EnvConfig, error) { return parseEnv(os.LookupEnv) }

// ParseEnv reads EnvConfig through getenv and fills the defaults. An
// empty value is taken as unset, so TASKGATE_METRICS_ADDR gets its
// default; to turn metrics off, empty cfg.MetricsAddr afterwards.
func ParseEnv(getenv func(string) string) (EnvConfig, error) {
	return parseEnv(func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	})
}

// parseEnv is ParseEnv through lookup, which tells an empty variable
// from an unset one.
func parseEnv(lookup func(string) (string, bool)) (EnvConfig, error) {
	getenv := func(k string) string {
		v, _ := lookup(k)
		return v
	}
	c := EnvConfig{
		Addr:         getenv("TASKGATE_ADDR"),
		DataDir:      getenv("TASKGATE_DATA_DIR"),
		DatabaseURL:  getenv("TASKGATE_DATABASE_URL"),
		AuthTokens:   getenv("TASKGATE_AUTH_TOKENS"),
		OIDCIssuer:   getenv("TASKGATE_OIDC_ISSUER"),
		OIDCAudience: getenv("TASKGATE_OIDC_AUDIENCE"),
		AuthCookie:   getenv("TASKGATE_AUTH_COOKIE"),

		OIDCClientID:     getenv("TASKGATE_OIDC_CLIENT_ID"),
		OIDCClientSecret: getenv("TASKGATE_OIDC_CLIENT_SECRET"),
		ExternalURL:      getenv("TASKGATE_EXTERNAL_URL"),
		NodeGPUs:         getenv("TASKGATE_NODE_GPUS"),
		NodeID:           getenv("TASKGATE_NODE_ID"),
		Role:             getenv("TASKGATE_ROLE"),
		AdminGroup:       getenv("TASKGATE_ADMIN_GROUP"),
		WebhookSecret:    getenv("TASKGATE_WEBHOOK_SECRET"),
	}
	if v := getenv("TASKGATE_WEBHOOK_ALLOW_PRIVATE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("TASKGATE_WEBHOOK_ALLOW_PRIVATE=%q is not a boolean", v)
		}
		c.WebhookAllowPrivate = b
	}
	switch v := getenv("TASKGATE_CONSOLE"); v {
	case "", "on":
	case "off":
		c.NoConsole = true
	default:
		return c, fmt.Errorf("TASKGATE_CONSOLE=%q: want on or off", v)
	}
	if v := getenv("TASKGATE_DELETE_RUNS_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return c, fmt.Errorf("TASKGATE_DELETE_RUNS_AFTER=%q is not a duration of 0 or more (e.g. 720h)", v)
		}
		c.DeleteRunsAfter = d
	}
	c.MaxInterruptions = dispatch.DefaultMaxInterruptions
	if v := getenv("TASKGATE_MAX_INTERRUPTIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c, fmt.Errorf("TASKGATE_MAX_INTERRUPTIONS=%q is not a whole number of 0 or more", v)
		}
		c.MaxInterruptions = noneIfZero(n)
	}
	c.DrainTimeout = dispatch.DefaultDrainTimeout
	if v := getenv("TASKGATE_DRAIN_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return c, fmt.Errorf("TASKGATE_DRAIN_TIMEOUT=%q is not a duration of 0 or more (e.g. 30s)", v)
		}
		c.DrainTimeout = noneIfZero(d)
	}
	if v := getenv("TASKGATE_BODY_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("TASKGATE_BODY_TIMEOUT=%q is not a positive duration (e.g. 60s)", v)
		}
		c.BodyTimeout = d
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = 60 * time.Second
	}
	if v := getenv("TASKGATE_SESSION_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("TASKGATE_SESSION_TTL=%q is not a positive duration (e.g. 12h)", v)
		}
		c.SessionTTL = d
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = middleware.DefaultSessionTTL
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.ExternalURL == "" {
		c.ExternalURL = defaultExternalURL(c.Addr)
	}
	if err := c.parseObservability(lookup); err != nil {
		return c, err
	}
	if c.DataDir == "" {
		c.DataDir = ".taskgate"
	}
	if c.AuthCookie == "" {
		c.AuthCookie = "taskgate_session"
	}
	if c.AdminGroup == "" {
		c.AdminGroup = "admins"
	}
	switch c.Role {
	case "":
		c.Role = "all"
	case "all", "api", "agent":
	default:
		return c, fmt.Errorf("TASKGATE_ROLE=%q: want all, api or agent", c.Role)
	}
	if (c.OIDCIssuer == "") != (c.OIDCAudience == "") {
		return c, errors.New("TASKGATE_OIDC_ISSUER and TASKGATE_OIDC_AUDIENCE go together")
	}
	if c.OIDCClientID != "" && c.OIDCIssuer == "" {
		return c, errors.New("TASKGATE_OIDC_CLIENT_ID needs TASKGATE_OIDC_ISSUER")
	}
	if c.OIDCClientSecret != "" && c.OIDCClientID == "" {
		return c, errors.New("TASKGATE_OIDC_CLIENT_SECRET needs TASKGATE_OIDC_CLIENT_ID")
	}
	return c, nil
}

// noneIfZero maps a variable's 0 ("none") to -1, dispatch.Config's
// spelling, where 0 means the default.
func noneIfZero[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// Service is what FromEnv assembled. App.Run starts and stops the rest.
type Service struct {
	App        *App
	Store      store.Store
	Dispatcher *dispatch.Dispatcher
	// DevToken is the bearer token generated because no credentials were
	// configured; empty otherwise. Print it for the developer, never log it.
	DevToken string
}

// FromEnv wires a service from cfg: the store (SQLite under DataDir, or the
// database of DatabaseURL), the dispatcher in its role with the local node's
// GPUs (declared, else detected with nvidia-smi), the authenticators, the
// tracer provider of the OTEL_* variables, and an App serving envs, with
// its metrics on cfg.MetricsAddr. logger nil means cfg.NewLogger on
// stderr.
func FromEnv(ctx context.Context, cfg EnvConfig, logger *slog.Logger, reg *tasks.Registry, envs ...environments.Environment) (*Service, error) {
	if logger == nil {
		logger = cfg.NewLogger(os.Stderr)
	}
	auth, devToken, err := authenticator(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	tp, stopTracing, err := tracing(ctx, cfg)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return nil, errors.Join(err, stopTracing(ctx))
	}
	gpus, err := nodeGPUs(ctx, cfg, logger)
	if err != nil {
		st.Close()
		return nil, errors.Join(err, stopTracing(ctx))
	}
	// The registry is made here rather than by the App, so that the
	// dispatcher and the delivery worker count into it from the start.
	metrics := cfg.Metrics
	if metrics == nil && cfg.MetricsAddr != "" {
		metrics = prometheus.NewRegistry()
	}
	var observer RunObserver
	if metrics != nil {
		if observer, err = NewRunMetrics(metrics); err != nil {
			st.Close()
			return nil, errors.Join(err, stopTracing(ctx))
		}
		if err := registerPools(metrics, st); err != nil {
			st.Close()
			return nil, errors.Join(err, stopTracing(ctx))
		}
	}
	role := map[string]dispatch.Role{"all": dispatch.RoleAll, "api": dispatch.RoleAPI, "agent": dispatch.RoleAgent}[cfg.Role]
	d, err := dispatch.New(dispatch.Config{
		Store:    st,
		Registry: reg,
		Logger:   logger,
		Role:     role,
		Node:     dispatch.NodeConfig{ID: cfg.NodeID, GPUs: gpus},

		DeleteAfter:      cfg.DeleteRunsAfter,
		MaxInterruptions: cfg.MaxInterruptions,
		DrainTimeout:     cfg.DrainTimeout,
		Observer:         observer,
		TracerProvider:   tp,
	})
	if err != nil {
		st.Close()
		return nil, errors.Join(err, stopTracing(ctx))
	}
	hooks, err := webhookWorker(cfg, st, d, logger, observer, tp)
	if err != nil {
		st.Close()
		return nil, errors.Join(err, stopTracing(ctx))
	}
	app := &App{
		Addr:          cfg.Addr,
		Logger:        logger,
		Environments:  envs,
		Registry:      reg,
		Dispatcher:    d,
		Authenticator: auth,
		Extractors:    []middleware.Extractor{middleware.BearerExtractor(), middleware.KeyExtractor(), middleware.CookieExtractor(cfg.AuthCookie)},
		AdminGroup:    cfg.AdminGroup,
		NoConsole:     cfg.NoConsole,
		BodyTimeout:   cfg.BodyTimeout,
		Login: LoginConfig{
			Sessions:         st,
			Cookie:           cfg.AuthCookie,
			TTL:              cfg.SessionTTL,
			ExternalURL:      cfg.ExternalURL,
			OIDCIssuer:       cfg.OIDCIssuer,
			OIDCClientID:     cfg.OIDCClientID,
			OIDCClientSecret: cfg.OIDCClientSecret,
		},
		agentOnly: role == dispatch.RoleAgent,

		Metrics:        metrics,
		MetricsAddr:    cfg.MetricsAddr,
		TracerProvider: tp,
		// The tracing pair comes first, so that its stop, flushing the
		// last spans, runs last.
		OnStart: []func(context.Context) error{
			func(context.Context) error { return nil },
			func(ctx context.Context) error {
				// A failed start releases what New opened: the App skips
				// the OnStop of a hook whose OnStart failed.
				if err := d.Start(ctx); err != nil {
					return errors.Join(err, d.Close(ctx), st.Close())
				}
				return nil
			},
			hooks.start,
		},
		OnStop: []func(context.Context) error{
			stopTracing,
			func(ctx context.Context) error { return errors.Join(d.Close(ctx), st.Close()) },
			hooks.stop,
		},
	}
	return &Service{App: app, Store: st, Dispatcher: d, DevToken: devToken}, nil
}

// authenticator chains OIDC (when configured) and static tokens behind a
// cache of verified identities. With neither configured it makes a random
// development token for subject "dev" in the admin group.
func authenticator(ctx context.Context, cfg EnvConfig, logger *slog.Logger) (middleware.Authenticator, string, error) {
	var chain []middleware.Authenticator
	var devToken string
	if cfg.OIDCIssuer != "" {
		o, err := middleware.NewOIDC(ctx, middleware.OIDCConfig{Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience, Logger: logger})
		if err != nil {
			return nil, "", fmt.Errorf("TASKGATE_OIDC_ISSUER: %w", err)
		}
		chain = append(chain, o)
	}
	spec := cfg.AuthTokens
	if spec == "" && cfg.OIDCIssuer == "" {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		devToken = "tg_dev_" + base64.RawURLEncoding.EncodeToString(b)
		spec = devToken + "=dev:" + cfg.AdminGroup
	}
	if spec != "" {
		st, err := middleware.ParseStaticTokens(spec)
		if err != nil {
			return nil, "", fmt.Errorf("TASKGATE_AUTH_TOKENS: %w", err)
		}
		chain = append(chain, st)
	}
	return middleware.NewCache(middleware.Chain(chain...), middleware.CacheConfig{}), devToken, nil
}

func openStore(ctx context.Context, cfg EnvConfig, logger *slog.Logger) (store.Store, error) {
	// Each case returns its concrete store through a typed nil check, so a
	// failed open never yields a non-nil interface holding a nil pointer.
	switch u := cfg.DatabaseURL; {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		st, err := postgres.Open(ctx, postgres.Config{URL: u})
		if err != nil {
			return nil, fmt.Errorf("TASKGATE_DATABASE_URL: %w", err)
		}
		return st, nil
	case strings.HasPrefix(u, "sqlite://"):
		st, err := sqlite.Open(ctx, strings.TrimPrefix(u, "sqlite://"))
		if err != nil {
			return nil, fmt.Errorf("TASKGATE_DATABASE_URL: %w", err)
		}
		return st, nil
	case u == "":
		if err := privateDataDir(cfg.DataDir, logger); err != nil {
			return nil, err
		}
		st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "taskgate.db"))
		if err != nil {
			return nil, fmt.Errorf("TASKGATE_DATA_DIR: %w", err)
		}
		return st, nil
	default:
		return nil, errors.New("TASKGATE_DATABASE_URL: want postgres://… or sqlite:///path")
	}
}

// privateDataDir creates the data directory (0700), or makes an existing
// one private: it holds every user's inputs, outputs and webhook URLs, and
// the webhook secret.
func privateDataDir(dir string, logger *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("TASKGATE_DATA_DIR: %w", err)
	}
	makePrivate(dir, 0o700, logger)
	return nil
}

// makePrivate gives path the mode perm when other users may read it, and
// warns: about the change, or that the mode could not be changed (a path
// another user owns), which leaves the data open to them.
func makePrivate(path string, perm fs.FileMode, logger *slog.Logger) {
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm()&0o077 == 0 {
		return
	}
	was := info.Mode().Perm().String()
	if err := os.Chmod(path, perm); err != nil {
		logger.Warn("readable by other users, and its mode cannot be changed", "path", path, "mode", was, "err", err)
		return
	}
	logger.Warn("was readable by other users; made it private", "path", path, "mode_was", was, "mode", perm.String())
}

// nodeGPUs is the declared inventory, else what nvidia-smi reports; no
// nvidia-smi means no GPUs.
func nodeGPUs(ctx context.Context, cfg EnvConfig, logger *slog.Logger) ([]scheduler.Device, error) {
	if cfg.Role == "api" {
		return nil, nil
	}
	if cfg.NodeGPUs != "" {
		devs, err := discovery.ParseDeclaredGPUs(cfg.NodeGPUs)
		if err != nil {
			return nil, fmt.Errorf("TASKGATE_NODE_GPUS: %w", err)
		}
		return devs, nil
	}
	devs, err := discovery.DetectGPUs(ctx, discovery.ExecCommand)
	if err != nil {
		logger.Warn("GPU detection failed; serving with no GPUs", "err", err)
		return nil, nil
	}
	return devs, nil
}

// workerHooks start and stop the webhook delivery worker with the App.
type workerHooks struct {
	start, stop func(context.Context) error
}

// webhookWorker builds the signed callback worker over the store's outbox.
// Secrets come from TASKGATE_WEBHOOK_SECRET (comma-separated while one
// rotates, newest first), else from a secret generated once and kept in
// DataDir/webhook.secret (mode 0600). Processes on several machines must
// share TASKGATE_WEBHOOK_SECRET. A node agent delivers nothing.
func webhookWorker(cfg EnvConfig, st store.Store, d *dispatch.Dispatcher, logger *slog.Logger, obs callback.Observer, tp trace.TracerProvider) (workerHooks, error) {
	nop := func(context.Context) error { return nil }
	if cfg.Role == "agent" {
		return workerHooks{nop, nop}, nil
	}
	var secrets []stdwebhook.Secret
	if cfg.WebhookSecret != "" {
		s, err := stdwebhook.ParseSecrets(strings.Split(cfg.WebhookSecret, ",")...)
		if err != nil {
			return workerHooks{}, fmt.Errorf("TASKGATE_WEBHOOK_SECRET: %w", err)
		}
		secrets = s
	} else {
		if err := privateDataDir(cfg.DataDir, logger); err != nil {
			return workerHooks{}, err
		}
		path := filepath.Join(cfg.DataDir, "webhook.secret")
		s, created, err := stdwebhook.LoadOrCreateSecretFile(path)
		if err != nil {
			return workerHooks{}, fmt.Errorf("webhook secret: %w", err)
		}
		if created {
			logger.Info("generated the webhook signing secret", "file", path)
		}
		makePrivate(path, 0o600, logger)
		secrets = []stdwebhook.Secret{s}
	}
	del, err := callback.New(callback.Config{Secrets: secrets, AllowPrivate: cfg.WebhookAllowPrivate})
	if err != nil {
		return workerHooks{}, err
	}
	w, err := callback.NewWorker(del, st, callback.WorkerConfig{Logger: logger.With("component", "webhooks"), Observer: obs, TracerProvider: tp})
	if err != nil {
		return workerHooks{}, err
	}
	var (
		cancel context.CancelFunc
		done   chan struct{}
		unsub  func()
	)
	start := func(ctx context.Context) error {
		var wctx context.Context
		wctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
		done = make(chan struct{})
		// A change that enqueued a delivery, in this process or another
		// sharing the store, wakes the worker: it looks now, not at the
		// next poll. Other changes (most) never wake it, and none costs a
		// read of the run.
		unsub = d.OnDelivery(w.Notify)
		go func() {
			defer close(done)
			if err := w.Run(wctx); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("webhook worker stopped", "err", err)
			}
		}()
		return nil
	}
	stop := func(ctx context.Context) error {
		if cancel == nil {
			return nil
		}
		unsub()
		cancel()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return workerHooks{start, stop}, nil
}
