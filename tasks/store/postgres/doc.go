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
//
// On the data path (request → auth → environment → dispatcher → scheduler →
// node agent → store → callbacks) it is the store step shared by processes:
// API processes, the leader and node agents write through it, its
// notifications hand work from one process to the next, and the callback
// workers drain its outbox. It wraps the shared SQL of
// tasks/store/internal/sqlstore; it must not import the dispatcher, the
// scheduler, middleware, environments or framework.
package postgres
