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
package sqlite
