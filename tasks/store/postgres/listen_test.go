package postgres_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/postgres"
)

// TestListenerReconnects: when the database drops the listening
// connection, the store connects again, publishes an overflow (what was
// sent meanwhile is lost), and delivers notifications again.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	s := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notes := s.Listen(ctx)

	admin, err := pgx.Connect(ctx, os.Getenv("TASKGATE_TEST_POSTGRES_URL"))
	require.NoError(t, err)
	defer admin.Close(context.Background())
	var killed int
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query LIKE 'LISTEN %' AND query LIKE '%' || $1 || '%'`, schemaOf(t, s)).Scan(&killed))
	require.Equal(t, 1, killed, "the store's listening connection")

	waitNote := func(kind store.NotificationKind) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case n := <-notes:
				if n.Kind == kind {
					return
				}
			case <-deadline:
				t.Fatalf("no %s notification", kind)
			}
		}
	}
	waitNote(store.NotifyOverflow)
	_, err = s.CreateRuns(ctx, []store.NewRun{{Name: "after-reconnect", Project: "p", Domain: "d", Task: "t",
		Caller: store.Caller{Subject: "a"}, CreatedAt: time.Now()}})
	require.NoError(t, err)
	waitNote(store.NotifySubmitted)
}

// schemaOf is the schema open made for s.
func schemaOf(t *testing.T, s *postgres.Store) string {
	t.Helper()
	var schema string
	require.NoError(t, s.Pool().QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schema))
	return schema
}
