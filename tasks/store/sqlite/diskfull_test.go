package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	msqlite "modernc.org/sqlite"

	"github.com/taskgate/taskgate/internal/tmpfs"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// TestFullDiskIsErrDiskFull fills the filesystem under a database: the
// write that does not fit fails with store.ErrDiskFull (which is also
// store.ErrUnavailable) around SQLite's own error, and writes work again
// once space returns.
func TestFullDiskIsErrDiskFull(t *testing.T) {
	dir := tmpfs.Mount(t, 2<<20)
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, sqlite.FileName))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	filler := tmpfs.Fill(t, dir, 64<<10)

	inputs := []byte(`{"pad":"` + strings.Repeat("x", 16<<10) + `"}`)
	newRun := func(i int) store.NewRun {
		return store.NewRun{Name: fmt.Sprintf("r%03d", i), Project: "p", Domain: "d", Task: "t",
			Caller: store.Caller{Subject: "a"}, Inputs: inputs, CreatedAt: time.Now()}
	}
	var full error
	stored := 0
	for i := range 100 {
		if _, full = s.CreateRuns(ctx, []store.NewRun{newRun(i)}); full != nil {
			break
		}
		stored++
	}
	require.Error(t, full, "100 runs of 16 KiB fit in 64 KiB")
	require.ErrorIs(t, full, store.ErrDiskFull)
	require.ErrorIs(t, full, store.ErrUnavailable)
	var se *msqlite.Error
	require.ErrorAs(t, full, &se, "the driver's error is kept")

	require.NoError(t, os.Remove(filler))
	_, err = s.CreateRuns(ctx, []store.NewRun{newRun(999)})
	require.NoError(t, err)
	for i := range stored {
		_, err := s.GetRun(ctx, fmt.Sprintf("r%03d", i))
		require.NoError(t, err)
	}
}
