package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks/store"
)

// TestDeliveryOrderMigration: deliveries enqueued before deliveries had a
// seq are numbered, within their run, in the order they were created, and
// are then claimed in that order.
func TestDeliveryOrderMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	s, err := Open(ctx, path)
	require.NoError(t, err)
	// Back to the schema of version 3, with three deliveries of one run
	// created out of id order, and one of another run.
	for _, q := range []string{
		`DROP INDEX deliveries_run`,
		`ALTER TABLE deliveries DROP COLUMN seq`,
		`CREATE INDEX deliveries_run ON deliveries (run)`,
		`DELETE FROM schema_migrations WHERE version = 4`,
	} {
		_, err := s.db.w.ExecContext(ctx, q)
		require.NoError(t, err, q)
	}
	at := time.Now().Add(-time.Minute)
	for i, d := range []struct{ id, run string }{{"msg_c", "r1"}, {"msg_a", "r1"}, {"msg_b", "r1"}, {"msg_z", "r2"}} {
		_, err := s.db.w.ExecContext(ctx, `INSERT INTO deliveries (id, run, url, event, state, next_attempt_at, created_at)
			VALUES (?, ?, 'https://example.com/hook', 'completed', 'pending', ?, ?)`, d.id, d.run, nanos(at), nanos(at.Add(time.Duration(i))))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())

	s, err = Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	ds, err := s.ListDeliveries(ctx, "r1")
	require.NoError(t, err)
	var got []string
	for _, d := range ds {
		got = append(got, fmt.Sprintf("%s:%d", d.ID, d.Seq))
	}
	require.Equal(t, []string{"msg_c:1", "msg_a:2", "msg_b:3"}, got)
	claimed, err := s.ClaimDueDeliveries(ctx, time.Now(), 10)
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	require.ElementsMatch(t, []string{"msg_c", "msg_z"}, []string{claimed[0].ID, claimed[1].ID})
	require.NoError(t, s.RecordDeliveryAttempt(ctx, "msg_c", store.DeliveryAttempt{At: time.Now(), StatusCode: 204, Done: true}))
	claimed, err = s.ClaimDueDeliveries(ctx, time.Now(), 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.Equal(t, "msg_a", claimed[0].ID)
}

// nanos is how the store keeps times.
func nanos(t time.Time) int64 { return t.UnixNano() }
