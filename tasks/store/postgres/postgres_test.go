package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/postgres"
	"github.com/taskgate/taskgate/tasks/store/storetest"
)

// Open returns a store in a fresh schema, dropped when t ends. It skips t
// when TASKGATE_TEST_POSTGRES_URL is unset.
func open(t *testing.T) *postgres.Store {
	t.Helper()
	url := os.Getenv("TASKGATE_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("TASKGATE_TEST_POSTGRES_URL is unset; set it to a PostgreSQL URL to run the PostgreSQL store tests")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "test_" + hex.EncodeToString(b)
	ctx := context.Background()
	s, err := postgres.Open(ctx, postgres.Config{URL: url, Schema: schema, MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = s.Close()
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			_, _ = conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
			_ = conn.Close(ctx)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}
