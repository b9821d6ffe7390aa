package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// FileName is the database file Open creates in a data directory.
const FileName = "taskgate.db"

// Store is a store.Store in one SQLite file.
type Store struct {
	*sqlstore.Store
	path   string
	db     *sqlDB
	leases *fileLeases
}

var _ store.Store = (*Store)(nil)

// OpenDir opens (creating it if needed) the database FileName in dir. The
// directory is made private (0700), an existing one too where this process
// may change its mode; the files in it are private either way (see Open).
func OpenDir(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: data dir: %w", err)
	}
	// A directory made beforehand (mkdir -p: 0755) lets every local user
	// list it. Another user's directory keeps its mode: the caller warns
	// about it (framework does).
	if info, err := os.Stat(dir); err == nil && info.Mode().Perm()&0o077 != 0 {
		_ = os.Chmod(dir, 0o700)
	}
	return Open(ctx, filepath.Join(dir, FileName))
}

// Open opens (creating it if needed) the SQLite database at path and applies
// pending migrations.
//
// The database runs in WAL mode with synchronous=FULL, so a commit is on
// disk when it returns. Writes go through a single connection whose
// transactions begin IMMEDIATE (no lock upgrades, hence no deadlocks between
// writers); reads use a pool that WAL lets run beside the writer.
//
// The database and the files SQLite keeps beside it (-wal, -shm) are
// readable by their owner only (0600), whatever the umask or the modes an
// earlier version left: they hold every user's inputs and outputs.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := privateFiles(path); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// The writer's page cache holds up to 64 MiB (SQLite's default is
	// 2 MiB): past a few thousand runs the default makes each commit read
	// back the pages of the runs it updates, a cost per run that grows with
	// the database (issue 19).
	pragmas := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(on)", "cache_size(-65536)"} {
		pragmas.Add("_pragma", p)
	}
	w := pragmas
	w.Set("_txlock", "immediate")
	writer, err := sql.Open("sqlite", "file:"+path+"?"+w.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "query_only(1)"} {
		r.Add("_pragma", p)
	}
	reader, err := sql.Open("sqlite", "file:"+path+"?"+r.Encode())
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	db := &sqlDB{w: writer, r: reader, stmts: map[string]*sql.Stmt{}, pending: map[string]bool{}}
	d := sqlstore.Dialect{MaxParams: 32000, LastInsertSeq: `SELECT last_insert_rowid()`, IndexedBy: true, Classify: classify}
	if _, err := sqlstore.Migrate(ctx, db, d, mustSub(migrations, "migrations")); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	leases := &fileLeases{base: path, files: map[string]*os.File{}}
	return &Store{Store: sqlstore.New(db, d), path: path, db: db, leases: leases}, nil
}

// privateFiles makes the database file 0600, creating it if needed, and
// the WAL, shared-memory and journal files left beside it too. SQLite
// would create a new database 0644 less the umask, but it gives the files
// it creates later beside it the database's own mode (umask or not), so
// a private database keeps them private.
func privateFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		info, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil && info.Mode().Perm() != 0o600 {
			err = os.Chmod(p, 0o600)
		}
		if err != nil {
			return fmt.Errorf("make %s private: %w", filepath.Base(p), err)
		}
	}
	return nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

var _ store.PoolReporter = (*Store)(nil)

// PoolStats reports the write connection and the read pool.
func (s *Store) PoolStats() []store.PoolStat {
	return []store.PoolStat{poolStat("writer", s.db.w.Stats()), poolStat("reader", s.db.r.Stats())}
}

func poolStat(name string, st sql.DBStats) store.PoolStat {
	return store.PoolStat{
		Name: name, MaxOpen: st.MaxOpenConnections, Open: st.OpenConnections, InUse: st.InUse, Idle: st.Idle,
		WaitCount: st.WaitCount, WaitDuration: st.WaitDuration,
	}
}

// sqlDB adapts database/sql to sqlstore.DB.
//
// It keeps the write statements prepared: modernc.org/sqlite parses every
// statement it is given, which costs more than executing most of them. A
// statement is prepared on the single write connection between
// transactions (it cannot be while one holds the connection), and each
// transaction then reuses it.
type sqlDB struct {
	w, r *sql.DB

	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
	pending map[string]bool

	pos positionalCache
}

// rewrite turns q's $N parameters into "?" (see placeholders.go) and
// orders args to match. Statements without arguments pass unchanged.
func (d *sqlDB) rewrite(q string, args []any) (string, []any, error) {
	if len(args) == 0 {
		return q, args, nil
	}
	p, err := d.pos.get(q)
	if err != nil {
		return "", nil, err
	}
	args, err = p.args(args)
	return p.query, args, err
}

// maxCachedStmts bounds the statement cache.
const maxCachedStmts = 512

func (d *sqlDB) cached(q string) *sql.Stmt {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.stmts[q]
	if st == nil && d.stmts != nil && len(d.stmts)+len(d.pending) < maxCachedStmts {
		d.pending[q] = true
	}
	return st
}

// preparePending prepares the statements transactions asked for. It runs
// after a commit; the write connection may be taken by then, in which case
// it waits its turn (never while holding d.mu, which transactions need).
func (d *sqlDB) preparePending(ctx context.Context) {
	d.mu.Lock()
	var qs []string
	for q := range d.pending {
		qs = append(qs, q)
	}
	d.mu.Unlock()
	for _, q := range qs {
		st, err := d.w.PrepareContext(ctx, q)
		d.mu.Lock()
		delete(d.pending, q)
		if err == nil {
			if d.stmts == nil {
				d.mu.Unlock()
				_ = st.Close() // closed meanwhile
				return
			}
			if old := d.stmts[q]; old != nil {
				_ = old.Close()
			}
			d.stmts[q] = st
		}
		d.mu.Unlock()
	}
}

func (d *sqlDB) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	q, args, err := d.rewrite(q, args)
	if err != nil {
		return 0, err
	}
	res, err := d.w.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (d *sqlDB) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	q, args, err := d.rewrite(q, args)
	if err != nil {
		return nil, err
	}
	rows, err := d.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (d *sqlDB) Begin(ctx context.Context) (sqlstore.Tx, error) {
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &sqlTx{tx: tx, db: d}, nil
}

func (d *sqlDB) Close() error {
	d.mu.Lock()
	for _, st := range d.stmts {
		_ = st.Close()
	}
	d.stmts = nil
	d.mu.Unlock()
	err := d.r.Close()
	if werr := d.w.Close(); err == nil {
		err = werr
	}
	return err
}

// sqlTx is a write transaction. It keeps the statements it prepares:
// modernc.org/sqlite parses every statement it is given, which costs more
// than executing most of them, and a group commit runs the same few
// statements for every run of its batch.
type sqlTx struct {
	tx    *sql.Tx
	db    *sqlDB
	stmts map[string]*sql.Stmt
}

// stmt returns q prepared in the transaction. Scripts of several
// statements (migrations) are not: a prepared statement is one statement.
func (t *sqlTx) stmt(ctx context.Context, q string, args []any) (*sql.Stmt, error) {
	if len(args) == 0 && strings.Contains(q, ";") {
		return nil, nil
	}
	if st, ok := t.stmts[q]; ok {
		return st, nil
	}
	var st *sql.Stmt
	if shared := t.db.cached(q); shared != nil {
		st = t.tx.StmtContext(ctx, shared)
	} else {
		var err error
		if st, err = t.tx.PrepareContext(ctx, q); err != nil {
			return nil, err
		}
	}
	if t.stmts == nil {
		t.stmts = map[string]*sql.Stmt{}
	}
	t.stmts[q] = st
	return st, nil
}

func (t *sqlTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	q, args, err := t.db.rewrite(q, args)
	if err != nil {
		return 0, err
	}
	st, err := t.stmt(ctx, q, args)
	if err != nil {
		return 0, err
	}
	var res sql.Result
	if st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = t.tx.ExecContext(ctx, q, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *sqlTx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	q, args, err := t.db.rewrite(q, args)
	if err != nil {
		return nil, err
	}
	st, err := t.stmt(ctx, q, args)
	if err != nil {
		return nil, err
	}
	var rows *sql.Rows
	if st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = t.tx.QueryContext(ctx, q, args...)
	}
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

// Commit ends the transaction, then prepares the statements it missed.
func (t *sqlTx) Commit(ctx context.Context) error {
	err := t.tx.Commit()
	t.db.preparePending(context.WithoutCancel(ctx))
	return err
}

func (t *sqlTx) Rollback(context.Context) error { return t.tx.Rollback() }

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

func mustSub(fsys embed.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}
