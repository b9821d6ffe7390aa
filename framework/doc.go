// Package framework serves taskgate environments over HTTP.
//
// An App is a config struct, like http.Server: it builds a chi root router
// (request ids, the client IP taken only from trusted proxies, panics turned
// into problem+json), picks an environment per request by Host (URL label or
// custom domain) and then by the longest path prefix, puts the passthrough
// auth and the limits of each environment in front of it, and runs the
// server with every timeout set. GET /ready (no credentials) is its
// readiness probe. With Login set (LoginConfig; FromEnv sets it) it signs
// browsers in at /auth/login, /auth/callback and /auth/logout
// (middleware/login): through the OIDC issuer's authorization code flow
// with PKCE, or with a token pasted on a page, for a session cookie that
// the store keeps, which the passthrough resolves before App.Authenticator
// and which signing out ends in every process. On SIGINT or SIGTERM it shuts down: first the
// Dispatcher drains its runs, letting its node's running runs finish
// (DrainTimeout) while the API still answers, refusing submits with 503 and
// Retry-After and /ready saying draining; then new requests get 503 (for
// ListenerCloseDelay), in-flight ones finish, and the OnStop hooks run in
// reverse order, like an ASGI lifespan.
//
// Every request gets an X-Request-Id, one access log line, a server span
// when TracerProvider is set (child of the caller's W3C traceparent), and
// its count, latency and refusal reason in Metrics, a Prometheus registry
// served with pprof on MetricsAddr, apart from the API (internal/telemetry).
//
// FromEnv wires a whole service from TASKGATE_* variables: the store
// (SQLite by default, PostgreSQL past one machine), the dispatcher with the
// local node's GPUs, static tokens or OIDC, and the signed webhook worker:
//
//	cfg, err := framework.LoadEnv()
//	if err != nil { … }
//	svc, err := framework.FromEnv(ctx, cfg, nil, registry, webhook.MustNew(webhook.Config{
//		Settings: environments.Settings{Name: "ml"},
//		Groups:   []string{"all"},
//	}))
//	if err != nil { … }
//	err = svc.App.Run(ctx)
//
// Package frameworktest has a local OIDC issuer (middleware/oidctest's) and
// Serve for tests of services built on it.
//
// framework stands over the whole data path (request → auth → environment
// → dispatcher → scheduler → node agent → store → callbacks): it builds
// each step from the environment and wires them together, so it may import
// every taskgate package, and no taskgate package may import it.
package framework
