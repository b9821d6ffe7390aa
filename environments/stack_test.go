package environments_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
)

// The webhook environment's test helpers (environments/webhook), which the
// tests of the edge every environment shares use too: a real App over a
// real SQLite file, and its replies.

const (
	whAlice = "alice-token-0123456789"
	whBob   = "bob-token-0123456789"
	whAdmin = "admin-token-0123456789"
)

// stack is a real App over a real SQLite file, served on loopback.
type stack struct {
	t    *testing.T
	base string
	svc  *framework.Service
}

func newStack(t *testing.T, envs ...environments.Environment) *stack {
	t.Helper()
	return newStackEnv(t, nil, envs...)
}

// newStackEnv is newStack with extra TASKGATE_* variables.
func newStackEnv(t *testing.T, extra map[string]string, envs ...environments.Environment) *stack {
	t.Helper()
	if len(envs) == 0 {
		envs = []environments.Environment{demo.Webhook()}
	}
	dataDir := t.TempDir()
	cfg, err := framework.ParseEnv(func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		switch k {
		case "TASKGATE_DATA_DIR":
			return dataDir
		case "TASKGATE_AUTH_TOKENS":
			return whAlice + "=alice:ml," + whBob + "=bob," + whAdmin + "=root:admins"
		case "TASKGATE_NODE_GPUS":
			return "A100:2"
		}
		return ""
	})
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := framework.FromEnv(context.Background(), cfg, logger, demo.Registry(), envs...)
	require.NoError(t, err)
	return &stack{t: t, base: frameworktest.Serve(t, svc.App), svc: svc}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (s *stack) do(method, path, token, body string, headers ...string) reply {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	require.NoError(s.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return roundTrip(s.t, req)
}

// roundTrip sends req and reads the reply: its JSON body, or for an event
// stream the status and headers only (a stream ends with its run).
func roundTrip(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return reply{status: resp.StatusCode, header: resp.Header}
	}
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}
