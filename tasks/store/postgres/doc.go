// Package postgres is the scale-out store.Store: PostgreSQL through a pgx/v5
// pool, shared by several API processes and node agents. Its schema
// migrations are embedded and applied at Open under an advisory lock.
// Notifications of committed changes travel between processes with
// LISTEN/NOTIFY (sent inside the transaction that causes them, so they
// arrive only if it commits), and the scheduler's leader lease is judged by
// the database's clock.
//
//	st, err := postgres.Open(ctx, postgres.Config{URL: os.Getenv("TASKGATE_DATABASE_URL")})
//	if err != nil {
//		return err
//	}
//	defer st.Close()
package postgres
