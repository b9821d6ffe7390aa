package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware"
)

func TestCredentialsNeverShowSecrets(t *testing.T) {
	t.Parallel()
	c := middleware.Credentials{Value: "key-id-visible-nowhere", Secret: "secret-visible-nowhere", Source: middleware.SourceKeySecret, Name: "Modal-Key"}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("creds", "c", c, "ptr", &c)
	js, err := json.Marshal(c)
	require.NoError(t, err)
	renderings := map[string]string{
		"%v":   fmt.Sprintf("%v", c),
		"%+v":  fmt.Sprintf("%+v", c),
		"%#v":  fmt.Sprintf("%#v", c),
		"%q":   fmt.Sprintf("%q", c),
		"ptr":  fmt.Sprintf("%v", &c),
		"json": string(js),
		"slog": logs.String(),
	}
	for name, s := range renderings {
		require.NotContains(t, s, "visible-nowhere", name)
		require.Contains(t, s, "key_secret", name)
	}
	require.Contains(t, renderings["%v"], "[REDACTED]")
}

func TestCredentialsContext(t *testing.T) {
	t.Parallel()
	_, ok := middleware.CredentialsFromContext(context.Background())
	require.False(t, ok)
	want := middleware.Credentials{Scheme: "Bearer", Value: "v", Source: middleware.SourceBearer}
	got, ok := middleware.CredentialsFromContext(middleware.WithCredentials(context.Background(), want))
	require.True(t, ok)
	require.Equal(t, want, got)
	require.False(t, middleware.IsAdmin(middleware.WithCredentials(context.Background(), want)))
}
