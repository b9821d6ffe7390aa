package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskgate/taskgate/tasks/store"
)

// Store implements store.Store over a DB.
type Store struct {
	db     DB
	d      Dialect
	hub    hub
	closed atomic.Bool

	// created guards lastCreated, the latest creation time this store
	// gave a run (insertRuns).
	created     sync.Mutex
	lastCreated time.Time
}

var _ store.Store = (*Store)(nil)

// New returns a Store over db, whose schema must be migrated already.
func New(db DB, d Dialect) *Store {
	if d.MaxParams == 0 {
		d.MaxParams = 30000
	}
	if d.Classify != nil {
		db = classifiedDB{db, d.Classify}
	}
	return &Store{db: db, d: d}
}

// Publish hands notifications received from the database (PostgreSQL
// LISTEN) to in-process listeners.
func (s *Store) Publish(ns []store.Notification) { s.hub.publish(ns) }

// Listen implements store.Store.
func (s *Store) Listen(ctx context.Context) <-chan store.Notification { return s.hub.listen(ctx) }

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	rows, err := s.db.Query(ctx, `SELECT 1`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var one int
	if rows.Next() {
		if err := rows.Scan(&one); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Close implements store.Store.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.hub.closeAll()
	return s.db.Close()
}

// withTx runs fn in a write transaction and publishes its notifications
// after commit (or sends them inside it, per the dialect).
func (s *Store) withTx(ctx context.Context, fn func(tx Tx, notes *[]store.Notification) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	var notes []store.Notification
	if err := fn(tx, &notes); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if s.d.Notify != nil && len(notes) > 0 {
		if err := s.d.Notify(ctx, unwrapTx(tx), notes); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return fmt.Errorf("notify: %w", mark(s.d.Classify, err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for i := range notes {
		notes[i].Local = true
	}
	s.hub.publish(notes)
	return nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix + 26 characters of lowercase base32 over 128 random
// bits: unguessable and URL-safe.
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + idEncoding.EncodeToString(b[:])
}
