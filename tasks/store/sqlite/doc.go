// Package sqlite is the embedded store.Store: one SQLite file (through the
// pure-Go modernc.org/sqlite driver) in WAL mode with synchronous=FULL, its
// schema migrations embedded and applied at Open. It is the default store of
// a single-process taskgate (API, scheduler and node agent together);
// notifications stay in process.
//
//	st, err := sqlite.OpenDir(ctx, os.Getenv("TASKGATE_DATA_DIR"))
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//
// On the data path (request → auth → environment → dispatcher → scheduler →
// node agent → store → callbacks) it is the store step of a single process:
// the API, the dispatcher's leader and node agent write through it, and the
// callback worker drains its outbox. It wraps the shared SQL of
// tasks/store/internal/sqlstore; it must not import the dispatcher, the
// scheduler, middleware, environments or framework.
package sqlite
