//go:build unix

package framework_test

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
)

// A data directory made beforehand with `mkdir -p` (0755) under the usual
// umask ends up 0700, with the database, its WAL and shared memory and the
// webhook secret 0600, and the start says it changed the directory. Not
// parallel: the umask is the process's.
func TestDataDirIsPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.Mkdir(dir, 0o755))
	cfg, err := framework.ParseEnv(env(map[string]string{"TASKGATE_DATA_DIR": dir, "TASKGATE_NODE_GPUS": "T4:1"}))
	require.NoError(t, err)
	var logs bytes.Buffer
	svc, err := framework.FromEnv(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)), demo.Registry(), demo.Webhook())
	require.NoError(t, err)
	defer svc.Store.Close()

	info, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o700), info.Mode().Perm())
	for _, name := range []string{"taskgate.db", "taskgate.db-wal", "taskgate.db-shm", "webhook.secret"} {
		require.FileExists(t, filepath.Join(dir, name))
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		info, err := e.Info()
		require.NoError(t, err)
		require.Equal(t, fs.FileMode(0o600), info.Mode().Perm(), e.Name())
	}
	require.Contains(t, logs.String(), "readable by other users", "the start warns about the directory it found open")
}
