package framework_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseEnvDefaultsAndErrors(t *testing.T) {
	t.Parallel()
	cfg, err := framework.ParseEnv(env(nil))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", cfg.Addr)
	require.Equal(t, ".taskgate", cfg.DataDir)
	require.Equal(t, "taskgate_session", cfg.AuthCookie)
	require.Equal(t, "admins", cfg.AdminGroup)
	require.Equal(t, "all", cfg.Role)
	require.Equal(t, "http://127.0.0.1:8080", cfg.ExternalURL)
	require.Equal(t, 12*time.Hour, cfg.SessionTTL)
	cfg, err = framework.ParseEnv(env(map[string]string{"TASKGATE_ADDR": ":9000", "TASKGATE_SESSION_TTL": "30m"}))
	require.NoError(t, err)
	require.Equal(t, "http://localhost:9000", cfg.ExternalURL, "a browser cannot reach an unspecified host")
	require.Equal(t, 30*time.Minute, cfg.SessionTTL)

	for name, vars := range map[string]map[string]string{
		"unknown role":            {"TASKGATE_ROLE": "scheduler"},
		"issuer without audience": {"TASKGATE_OIDC_ISSUER": "https://issuer.example"},
		"audience without issuer": {"TASKGATE_OIDC_AUDIENCE": "taskgate"},
		"allow-private not bool":  {"TASKGATE_WEBHOOK_ALLOW_PRIVATE": "sometimes"},
		"delete-after in days":    {"TASKGATE_DELETE_RUNS_AFTER": "30d"},
		"delete-after negative":   {"TASKGATE_DELETE_RUNS_AFTER": "-1h"},
		"session TTL in days":     {"TASKGATE_SESSION_TTL": "1d"},
		"session TTL zero":        {"TASKGATE_SESSION_TTL": "0s"},
		"client without issuer":   {"TASKGATE_OIDC_CLIENT_ID": "console"},
		"secret without client":   {"TASKGATE_OIDC_ISSUER": "https://issuer.example", "TASKGATE_OIDC_AUDIENCE": "x", "TASKGATE_OIDC_CLIENT_SECRET": "s"},
	} {
		_, err := framework.ParseEnv(env(vars))
		require.Error(t, err, name)
	}
	require.Zero(t, cfg.DeleteRunsAfter, "runs are kept forever by default")
	cfg, err = framework.ParseEnv(env(map[string]string{"TASKGATE_DELETE_RUNS_AFTER": "720h"}))
	require.NoError(t, err)
	require.Equal(t, 720*time.Hour, cfg.DeleteRunsAfter)
}

func TestFromEnvRefusesBadSettingsWithTheirNames(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		vars map[string]string
		want string
	}{
		"short token":    {map[string]string{"TASKGATE_AUTH_TOKENS": "short=alice"}, "TASKGATE_AUTH_TOKENS"},
		"bad GPUs":       {map[string]string{"TASKGATE_NODE_GPUS": "Z9000:4"}, "TASKGATE_NODE_GPUS"},
		"bad database":   {map[string]string{"TASKGATE_DATABASE_URL": "mysql://x"}, "TASKGATE_DATABASE_URL"},
		"bad secret":     {map[string]string{"TASKGATE_WEBHOOK_SECRET": "whsec_!!"}, "TASKGATE_WEBHOOK_SECRET"},
		"issuer offline": {map[string]string{"TASKGATE_OIDC_ISSUER": "http://127.0.0.1:1", "TASKGATE_OIDC_AUDIENCE": "x"}, "TASKGATE_OIDC_ISSUER"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tc.vars["TASKGATE_DATA_DIR"] = t.TempDir()
			cfg, err := framework.ParseEnv(env(tc.vars))
			require.NoError(t, err)
			_, err = framework.FromEnv(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), demo.Registry(), demo.Webhook())
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestFromEnvVerifiesOIDCAndStaticTokens wires a service from variables
// against a real OIDC issuer on httptest: an OIDC token and a static token
// both reach /me with their identities; a token of another audience is 401.
func TestFromEnvVerifiesOIDCAndStaticTokens(t *testing.T) {
	t.Parallel()
	iss := frameworktest.NewIssuer(t)
	cfg, err := framework.ParseEnv(env(map[string]string{
		"TASKGATE_DATA_DIR":      t.TempDir(),
		"TASKGATE_OIDC_ISSUER":   iss.URL,
		"TASKGATE_OIDC_AUDIENCE": iss.Audience,
		"TASKGATE_AUTH_TOKENS":   "static-token-0123456789=robot:ci+admins",
		"TASKGATE_NODE_GPUS":     "T4:1",
	}))
	require.NoError(t, err)
	svc, err := framework.FromEnv(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), demo.Registry(),
		webhook.MustNew(webhook.Config{Settings: environments.Settings{Name: "wh"}}))
	require.NoError(t, err)
	require.Empty(t, svc.DevToken, "no dev token when credentials are configured")
	base := frameworktest.Serve(t, svc.App)

	me := func(token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, base+"/me", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	code, body := me(iss.Mint(map[string]any{"sub": "alice", "email": "alice@example.com", "name": "Alice", "groups": []string{"ml"}}))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "alice", body["subject"])
	require.Equal(t, "alice@example.com", body["email"])
	require.Equal(t, []any{"ml"}, body["groups"])

	code, body = me("static-token-0123456789")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "robot", body["subject"])
	require.Equal(t, []any{"ci", "admins"}, body["groups"])

	code, _ = me(iss.MintWrongAudience(map[string]any{"sub": "mallory"}))
	require.Equal(t, http.StatusUnauthorized, code)
}
