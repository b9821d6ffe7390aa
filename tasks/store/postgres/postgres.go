package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskgate/taskgate/internal/backoff"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config configures Open. URL is required.
type Config struct {
	// URL is a postgres:// connection URL.
	URL string
	// Schema, when set, is created if missing and used as the search_path,
	// so that several taskgate installations (or tests) share a database.
	Schema string
	// MaxConns bounds the pool; zero means pgxpool's default.
	MaxConns int32
	// Logger receives listener reconnection messages; nil means slog.Default.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.URL == "" {
		return errors.New("postgres: Config.URL is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Store is a store.Store in PostgreSQL, shared by every process of a
// taskgate deployment.
type Store struct {
	*sqlstore.Store
	pool    *pgxpool.Pool
	channel string
	// origin tells this Store's notifications from other processes';
	// ownPrefix begins each of its payloads (payload's first field).
	origin, ownPrefix string
	cancel            context.CancelFunc
	wg                sync.WaitGroup
}

var _ store.Store = (*Store)(nil)

// channelPrefix names the LISTEN/NOTIFY channel; the schema is appended.
const channelPrefix = "taskgate"

// notifyLimit keeps each pg_notify payload under PostgreSQL's 8000 bytes.
const notifyLimit = 7000

// Open connects, applies pending migrations (serialized between processes
// by an advisory lock) and starts listening for notifications.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	channel := channelPrefix
	if cfg.Schema != "" {
		conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig.Copy())
		if err != nil {
			return nil, fmt.Errorf("postgres: connect: %w", err)
		}
		_, err = conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{cfg.Schema}.Sanitize())
		conn.Close(ctx)
		if err != nil {
			return nil, fmt.Errorf("postgres: create schema: %w", err)
		}
		pc.ConnConfig.RuntimeParams["search_path"] = cfg.Schema
		channel += "_" + cfg.Schema
	}
	origin := sqlstore.NewID("")
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db := &pgDB{pool: pool}
	d := sqlstore.Dialect{
		ForUpdate:     " FOR UPDATE",
		SkipLocked:    " FOR UPDATE SKIP LOCKED",
		OutboxPlan:    outboxPlan,
		LeaseNow:      `(extract(epoch from clock_timestamp()) * 1000000000)::bigint`,
		MigrationLock: `SELECT pg_advisory_xact_lock(7423115)`,
		MaxParams:     65000,
		ArrayInsert:   true,
		CastParams:    true,
		SeqMerge:      true,
		PlanEach:      pgx.QueryExecModeExec,
		Classify:      classify,
		Notify: func(ctx context.Context, tx sqlstore.Tx, ns []store.Notification) error {
			return notify(ctx, tx, channel, origin, ns)
		},
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		pool.Close()
		return nil, err
	}
	if _, err := sqlstore.Migrate(ctx, db, d, sub); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	s := &Store{Store: sqlstore.New(db, d), pool: pool, channel: channel, origin: origin, ownPrefix: `{"o":"` + origin + `",`}
	lctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	ready := make(chan error, 1)
	s.wg.Add(1)
	go s.listen(lctx, pc.ConnConfig, cfg.Logger, ready)
	select {
	case err := <-ready:
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("postgres: listen: %w", err)
		}
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
	return s, nil
}

// Pool is the connection pool, for callers that share it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

var _ store.PoolReporter = (*Store)(nil)

// PoolStats reports the pool as "main". Its waits are the acquires that
// found no idle connection; the LISTEN connection is outside the pool.
func (s *Store) PoolStats() []store.PoolStat {
	st := s.pool.Stat()
	return []store.PoolStat{{
		Name: "main", MaxOpen: int(st.MaxConns()), Open: int(st.TotalConns()), InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns()),
		WaitCount: st.EmptyAcquireCount(), WaitDuration: st.EmptyAcquireWaitTime(),
	}}
}

// Close stops listening and closes the pool.
func (s *Store) Close() error {
	s.cancel()
	s.wg.Wait()
	return s.Store.Close()
}

// payload is what one pg_notify carries.
type payload struct {
	Origin string               `json:"o"`
	Notes  []store.Notification `json:"n"`
}

// notify sends ns in payloads under notifyLimit bytes each.
func notify(ctx context.Context, tx sqlstore.Tx, channel, origin string, ns []store.Notification) error {
	var batch []store.Notification
	size := 64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		b, _ := json.Marshal(payload{Origin: origin, Notes: batch})
		batch, size = batch[:0], 64
		if p, ok := tx.(*pgTx); ok {
			// Nobody reads the result: it travels with COMMIT.
			p.deferExec(`SELECT pg_notify($1, $2)`, channel, string(b))
			return nil
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, string(b))
		return err
	}
	for _, n := range ns {
		b, err := json.Marshal(n)
		if err != nil {
			return err
		}
		if size+len(b)+1 > notifyLimit {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, n)
		size += len(b) + 1
	}
	return flush()
}

// listen holds a dedicated connection on LISTEN and publishes what arrives.
// After a lost connection it reconnects and publishes NotifyOverflow, since
// notifications sent meanwhile are gone.
func (s *Store) listen(ctx context.Context, cc *pgx.ConnConfig, log *slog.Logger, ready chan<- error) {
	defer s.wg.Done()
	first := true
	fails := backoff.New(backoff.Config{Logger: log, Msg: "postgres listener connection", Min: time.Second})
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, cc, func() {
			if first {
				first = false
				ready <- nil
			} else {
				fails.OK(ctx)
				s.Publish([]store.Notification{{Kind: store.NotifyOverflow}})
			}
		})
		if ctx.Err() != nil {
			return
		}
		if first {
			ready <- err
			return
		}
		backoff.Sleep(ctx, fails.Fail(ctx, err))
	}
}

func (s *Store) listenOnce(ctx context.Context, cc *pgx.ConnConfig, up func()) error {
	conn, err := pgx.ConnectConfig(ctx, cc.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	up()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if strings.HasPrefix(n.Payload, s.ownPrefix) {
			continue // this process's own: published at its commit
		}
		var p payload
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
			continue // not ours
		}
		s.Publish(p.Notes)
	}
}

// pgDB adapts a pgx pool to sqlstore.DB.
type pgDB struct{ pool *pgxpool.Pool }

func (d *pgDB) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := d.pool.Exec(ctx, q, args...)
	return tag.RowsAffected(), err
}

func (d *pgDB) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	return d.pool.Query(ctx, q, args...)
}

// Begin takes a connection for a transaction without a round trip: BEGIN
// travels with the transaction's first statement (see pgTx).
func (d *pgDB) Begin(ctx context.Context) (sqlstore.Tx, error) {
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &pgTx{conn: c}, nil
}

func (d *pgDB) Close() error { d.pool.Close(); return nil }

// pgTx is a transaction on one pooled connection that pipelines what needs
// no answer in between: BEGIN is sent with the first statement, and the
// statements queued with deferExec (pg_notify) with COMMIT. A group commit
// then costs two round trips instead of four; each one on a loaded machine
// waits for the database process to be scheduled.
type pgTx struct {
	conn     *pgxpool.Conn
	begun    bool
	closed   bool
	deferred []pgStmt
}

// release returns the connection once; false when it was already.
func (t *pgTx) release() bool {
	if t.closed {
		return false
	}
	t.closed = true
	t.conn.Release()
	return true
}

type pgStmt struct {
	sql  string
	args []any
}

// deferExec queues a statement whose result nobody reads; it runs just
// before COMMIT, in the same round trip, and its failure fails the commit.
func (t *pgTx) deferExec(q string, args ...any) { t.deferred = append(t.deferred, pgStmt{q, args}) }

// first sends BEGIN and q together and returns the batch with q's result
// next; the caller closes it.
func (t *pgTx) first(ctx context.Context, q string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(q, args...)
	br := t.conn.SendBatch(ctx, b)
	t.begun = true
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, err
	}
	return br, nil
}

func (t *pgTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	if t.begun {
		tag, err := t.conn.Exec(ctx, q, args...)
		return tag.RowsAffected(), err
	}
	br, err := t.first(ctx, q, args)
	if err != nil {
		return 0, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag.RowsAffected(), err
}

func (t *pgTx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	if t.begun {
		return t.conn.Query(ctx, q, args...)
	}
	br, err := t.first(ctx, q, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return batchRows{Rows: rows, br: br}, nil
}

// batchRows closes its batch with the rows, freeing the connection.
type batchRows struct {
	pgx.Rows
	br pgx.BatchResults
}

func (r batchRows) Close() {
	r.Rows.Close()
	_ = r.br.Close()
}

// Commit sends the deferred statements and COMMIT in one round trip.
func (t *pgTx) Commit(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	defer t.release()
	if !t.begun && len(t.deferred) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	if !t.begun {
		b.Queue("BEGIN")
	}
	for _, st := range t.deferred {
		b.Queue(st.sql, st.args...)
	}
	b.Queue("COMMIT")
	br := t.conn.SendBatch(ctx, b)
	var err error
	for range b.Len() {
		var tag pgconn.CommandTag
		if tag, err = br.Exec(); err != nil {
			break
		}
		// A transaction that failed earlier answers COMMIT with ROLLBACK.
		if tag.String() == "ROLLBACK" {
			err = pgx.ErrTxCommitRollback
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// The pool discards a connection left inside a transaction.
		_, _ = t.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
	return err
}

func (t *pgTx) Rollback(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	defer t.release()
	if !t.begun {
		return nil
	}
	_, err := t.conn.Exec(ctx, "ROLLBACK")
	return err
}

// outboxPlan keeps the outbox's claims and records on its indexes (an
// index scan of the due deliveries in order, stopped at the claim's limit;
// a primary-key probe per record) within their transaction. Without it a
// table filled faster than autovacuum analyzes it (a burst of callbacks, a
// new deployment) has no statistics, and the claim was planned as a hash
// anti-join and a sort of every pending delivery, or, in a prepared
// statement's generic plan, a nested loop over all of them for each one
// claimed: a claim of 200 took 100 to 450 ms at 10,000 pending instead of
// 10 (issue 19). The settings only price the other plans out; where no
// index plan exists the statement still runs.
const outboxPlan = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
	set_config('enable_sort', 'off', true), set_config('enable_hashjoin', 'off', true),
	set_config('enable_mergejoin', 'off', true), set_config('enable_material', 'off', true)`
