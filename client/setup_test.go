package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/tasks"
)

const (
	aliceToken = "alice-token-0123456789"
	bobToken   = "bob-token-0123456789"
	adminToken = "admin-token-0123456789"
)

// boom fails at once, whatever its retry policy: a run that ends failed.
var boom = tasks.MustDefine("test", "development", "boom",
	func(context.Context, struct{}) (struct{}, error) {
		return struct{}{}, tasks.Permanent(errors.New("boom on purpose"))
	}, nil)

func registry() *tasks.Registry {
	r := demo.Registry()
	r.MustRegister(boom)
	return r
}

// service wires a real service over a real SQLite file in dataDir, with
// static tokens for alice, bob and an admin.
func service(t *testing.T, dataDir string, envs ...environments.Environment) *framework.Service {
	t.Helper()
	if len(envs) == 0 {
		envs = []environments.Environment{demo.Webhook()}
	}
	cfg, err := framework.ParseEnv(func(k string) string {
		switch k {
		case "TASKGATE_DATA_DIR":
			return dataDir
		case "TASKGATE_AUTH_TOKENS":
			return aliceToken + "=alice:ml," + bobToken + "=bob," + adminToken + "=root:admins"
		case "TASKGATE_NODE_GPUS":
			return "A100:1"
		}
		return ""
	})
	require.NoError(t, err)
	svc, err := framework.FromEnv(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), registry(), envs...)
	require.NoError(t, err)
	return svc
}

// serve serves a fresh service on loopback until the test ends and
// returns its URL.
func serve(t *testing.T, envs ...environments.Environment) string {
	t.Helper()
	return frameworktest.Serve(t, service(t, t.TempDir(), envs...).App)
}

// newClient is a client of base as the caller of token.
func newClient(t *testing.T, base, token string) *client.Client {
	t.Helper()
	c, err := client.New(base, &client.Options{Credentials: client.BearerToken(token), UserAgent: "client-test/1"})
	require.NoError(t, err)
	return c
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// running is a service served by App.Serve on a listener of its own, so
// that a test can stop it and start another on the same address.
type running struct {
	cancel context.CancelFunc
	errc   chan error
}

func serveOn(t *testing.T, ln net.Listener, dataDir string) *running {
	t.Helper()
	svc := service(t, dataDir)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- svc.App.Serve(ctx, ln) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop shuts the service down as a SIGTERM would, once.
func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	require.NoError(t, <-r.errc, "a clean shutdown returns nil")
}
