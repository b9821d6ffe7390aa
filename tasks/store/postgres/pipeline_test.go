package postgres

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// pipelineDB is a pgDB on a one-connection pool with a temporary table, so
// that a connection left inside a transaction shows at once.
func pipelineDB(t *testing.T) *pgDB {
	t.Helper()
	url := os.Getenv("TASKGATE_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("TASKGATE_TEST_POSTGRES_URL is unset; set it to a PostgreSQL URL to run the PostgreSQL store tests")
	}
	pc, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	pc.MaxConns = 1
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, `CREATE TEMPORARY TABLE pipe (id INT PRIMARY KEY)`)
	require.NoError(t, err)
	return &pgDB{pool: pool}
}

func count(t *testing.T, db *pgDB) int {
	t.Helper()
	var n int
	require.NoError(t, db.pool.QueryRow(context.Background(), `SELECT count(*) FROM pipe`).Scan(&n))
	return n
}

// TestPipelinedTx checks the round-trip-saving transaction: BEGIN with the
// first statement, deferred statements with COMMIT, and a failure anywhere
// committing nothing and leaving the connection usable.
func TestPipelinedTx(t *testing.T) {
	db := pipelineDB(t)
	ctx := context.Background()

	// Statements after the first see the first one's effects: one
	// transaction, not autocommits.
	tx, err := db.Begin(ctx)
	require.NoError(t, err)
	n, err := tx.Exec(ctx, `INSERT INTO pipe VALUES ($1), ($2)`, 1, 2)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	rows, err := tx.Query(ctx, `SELECT count(*) FROM pipe`)
	require.NoError(t, err)
	require.True(t, rows.Next())
	var inTx int
	require.NoError(t, rows.Scan(&inTx))
	rows.Close()
	require.Equal(t, 2, inTx)
	tx.(*pgTx).deferExec(`INSERT INTO pipe VALUES ($1)`, 3)
	require.NoError(t, tx.Commit(ctx))
	require.ErrorIs(t, tx.Rollback(ctx), pgx.ErrTxClosed, "rollback after commit is a no-op")
	require.Equal(t, 3, count(t, db), "the deferred statement ran with COMMIT")

	// A first statement given as a query (rows) also opens the transaction.
	tx, err = db.Begin(ctx)
	require.NoError(t, err)
	rows, err = tx.Query(ctx, `INSERT INTO pipe VALUES ($1) RETURNING id`, 4)
	require.NoError(t, err)
	require.True(t, rows.Next())
	rows.Close()
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, 3, count(t, db), "rolled back")

	// A deferred statement that fails fails the commit and undoes the rest.
	tx, err = db.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO pipe VALUES ($1)`, 5)
	require.NoError(t, err)
	tx.(*pgTx).deferExec(`INSERT INTO pipe VALUES ($1)`, 1) // duplicate key
	require.Error(t, tx.Commit(ctx))
	require.Equal(t, 3, count(t, db))

	// A failed statement, then COMMIT: PostgreSQL answers ROLLBACK.
	tx, err = db.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO pipe VALUES ($1)`, 6)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO pipe VALUES ($1)`, 2)
	require.Error(t, err)
	require.ErrorIs(t, tx.Commit(ctx), pgx.ErrTxCommitRollback)
	require.Equal(t, 3, count(t, db))

	// A first statement that fails, then Rollback as the store does.
	tx, err = db.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO missing VALUES (1)`)
	require.Error(t, err)
	require.NoError(t, tx.Rollback(ctx))

	// A transaction with nothing in it costs nothing and commits.
	tx, err = db.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	// The one connection came back idle every time.
	require.Equal(t, 3, count(t, db))
	require.EqualValues(t, 0, db.pool.Stat().AcquiredConns())
}
