//go:build unix

package sqlite_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// The database holds every user's inputs, outputs and webhook URLs: the
// data directory is 0700 and its files 0600 whatever the umask, the
// directory's prior mode, or the modes an earlier version left. Not
// parallel: the umask is the process's.
func TestFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.Mkdir(dir, 0o755)) // as `mkdir -p` makes it
	db := filepath.Join(dir, sqlite.FileName)

	s, err := sqlite.OpenDir(ctx, dir)
	require.NoError(t, err)
	_, err = s.AcquireLease(ctx, "scheduler", "node-1", time.Minute)
	require.NoError(t, err)
	requirePrivate(t, dir, db, db+"-wal", db+"-shm")
	require.NoError(t, s.Close())

	// Files an earlier version left open to every user, WAL and shared
	// memory of a process that was killed included.
	for _, p := range []string{dir, db} {
		require.NoError(t, os.Chmod(p, 0o755))
	}
	for _, p := range []string{db + "-wal", db + "-shm"} {
		require.NoError(t, os.WriteFile(p, nil, 0o644))
	}
	s, err = sqlite.OpenDir(ctx, dir)
	require.NoError(t, err)
	defer s.Close()
	requirePrivate(t, dir, db, db+"-wal", db+"-shm")
}

// requirePrivate checks that dir is 0700, that every file in it is 0600,
// and that the files named exist.
func requirePrivate(t *testing.T, dir string, files ...string) {
	t.Helper()
	info, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o700), info.Mode().Perm(), "data directory %s", dir)
	for _, f := range files {
		require.FileExists(t, f)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		info, err := e.Info()
		require.NoError(t, err)
		require.Equal(t, fs.FileMode(0o600), info.Mode().Perm(), "file %s", e.Name())
	}
}
