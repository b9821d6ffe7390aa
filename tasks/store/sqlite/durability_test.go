package sqlite

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCommitsAreDurable checks the settings that make a commit durable
// when it returns, which the submit path's 2xx relies on: the writer runs
// in WAL mode with synchronous=FULL (2), and the readers cannot write.
func TestCommitsAreDurable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTempStore(t)

	var mode string
	var sync, readOnly int
	require.NoError(t, s.db.w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode))
	require.NoError(t, s.db.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync))
	require.Equal(t, "wal", mode)
	require.Equal(t, 2, sync, "synchronous must be FULL")

	require.NoError(t, s.db.r.QueryRowContext(ctx, `PRAGMA query_only`).Scan(&readOnly))
	require.Equal(t, 1, readOnly)
	_, err := s.db.r.ExecContext(ctx, `DELETE FROM runs`)
	require.Error(t, err, "a reader connection wrote")
}
