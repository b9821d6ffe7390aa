package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskgate/taskgate/tasks/store"
)

// classifiedDB marks the errors of a DB that the dialect recognizes as the
// database's own failures (store.ErrUnavailable, store.ErrDiskFull), at
// the one place every statement passes through, so that no method of the
// Store can return one unmarked.
type classifiedDB struct {
	DB
	classify func(error) error
}

// mark wraps err with the kind classify finds, keeping err for errors.As.
// A nil classify marks nothing.
func mark(classify func(error) error, err error) error {
	if err == nil || classify == nil || errors.Is(err, store.ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if kind := classify(err); kind != nil {
		return fmt.Errorf("%w: %w", kind, err)
	}
	return err
}

func (d classifiedDB) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	n, err := d.DB.Exec(ctx, q, args...)
	return n, mark(d.classify, err)
}

func (d classifiedDB) Query(ctx context.Context, q string, args ...any) (Rows, error) {
	rows, err := d.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, mark(d.classify, err)
	}
	return classifiedRows{rows, d.classify}, nil
}

func (d classifiedDB) Begin(ctx context.Context) (Tx, error) {
	tx, err := d.DB.Begin(ctx)
	if err != nil {
		return nil, mark(d.classify, err)
	}
	return classifiedTx{tx, d.classify}, nil
}

type classifiedTx struct {
	Tx
	classify func(error) error
}

// unwrapTx returns the adapter's own transaction, which Dialect.Notify
// may expect.
func unwrapTx(tx Tx) Tx {
	if c, ok := tx.(classifiedTx); ok {
		return c.Tx
	}
	return tx
}

func (t classifiedTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	n, err := t.Tx.Exec(ctx, q, args...)
	return n, mark(t.classify, err)
}

func (t classifiedTx) Query(ctx context.Context, q string, args ...any) (Rows, error) {
	rows, err := t.Tx.Query(ctx, q, args...)
	if err != nil {
		return nil, mark(t.classify, err)
	}
	return classifiedRows{rows, t.classify}, nil
}

func (t classifiedTx) Commit(ctx context.Context) error {
	return mark(t.classify, t.Tx.Commit(ctx))
}

type classifiedRows struct {
	Rows
	classify func(error) error
}

func (r classifiedRows) Scan(dest ...any) error { return mark(r.classify, r.Rows.Scan(dest...)) }
func (r classifiedRows) Err() error             { return mark(r.classify, r.Rows.Err()) }
