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
	"github.com/taskgate/taskgate/tasks/store/postgres/pgtest"
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

// TestNotificationsReachEachProcessOnce: a commit's notifications reach
// the committing process's listeners once, marked Local, at its commit
// (not again through the database), and another process's once, not
// marked.
func TestNotificationsReachEachProcessOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := pgtest.Config(t, "notes", "the PostgreSQL store tests")
	a, err := postgres.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	b, err := postgres.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	fromA, fromB := a.Listen(ctx), b.Listen(ctx)

	_, err = a.CreateRuns(ctx, []store.NewRun{{Name: "once", Project: "p", Domain: "d", Task: "t",
		Caller: store.Caller{Subject: "a"}, CreatedAt: time.Now()}})
	require.NoError(t, err)
	// A later commit by b: once b hears of it, a's notification has
	// come back through the database too, had it been sent to a.
	_, err = b.CreateRuns(ctx, []store.NewRun{{Name: "marker", Project: "p", Domain: "d", Task: "t",
		Caller: store.Caller{Subject: "a"}, CreatedAt: time.Now()}})
	require.NoError(t, err)
	collect := func(ch <-chan store.Notification, want int) []store.Notification {
		t.Helper()
		var got []store.Notification
		deadline := time.After(10 * time.Second)
		for len(got) < want {
			select {
			case n := <-ch:
				got = append(got, n)
			case <-deadline:
				t.Fatalf("got %v, want %d notifications", got, want)
			}
		}
		select {
		case n := <-ch:
			t.Fatalf("after %v, another: %v", got, n)
		case <-time.After(300 * time.Millisecond):
		}
		return got
	}
	submitted := func(local bool) store.Notification {
		return store.Notification{Kind: store.NotifySubmitted, Local: local}
	}
	require.Equal(t, []store.Notification{submitted(true), submitted(false)}, collect(fromA, 2))
	require.Equal(t, []store.Notification{submitted(false), submitted(true)}, collect(fromB, 2))
}
