package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
	"github.com/taskgate/taskgate/tasks/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.OpenDir(context.Background(), t.TempDir())
		require.NoError(t, err)
		return s
	})
}

func TestReopenKeepsDataAndSkipsMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	s, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	_, err = s.CreateRuns(ctx, []store.NewRun{{Name: "r1", Project: "p", Domain: "d", Task: "t", Caller: store.Caller{Subject: "a"}}})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s, err = sqlite.Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	r, err := s.GetRun(ctx, "r1")
	require.NoError(t, err)
	require.Equal(t, "a", r.Owner)
}
