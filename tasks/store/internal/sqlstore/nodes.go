package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskgate/taskgate/tasks/store"
)

// UpsertNode implements store.Store.
func (s *Store) UpsertNode(ctx context.Context, n store.Node) error {
	return s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		_, err := tx.Exec(ctx, `INSERT INTO nodes (id, inventory, heartbeat_at, started_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET inventory = excluded.inventory, heartbeat_at = excluded.heartbeat_at,
			started_at = excluded.started_at`, n.ID, string(n.Inventory), nanos(n.Heartbeat), nanos(n.StartedAt))
		if err != nil {
			return fmt.Errorf("upsert node: %w", err)
		}
		return nil
	})
}

// Heartbeat implements store.Store.
func (s *Store) Heartbeat(ctx context.Context, id string, at time.Time) error {
	return s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		n, err := tx.Exec(ctx, `UPDATE nodes SET heartbeat_at = $1 WHERE id = $2`, nanos(at), id)
		if err != nil {
			return fmt.Errorf("heartbeat: %w", err)
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

// Nodes implements store.Store.
func (s *Store) Nodes(ctx context.Context) ([]store.Node, error) {
	rows, err := s.db.Query(ctx, `SELECT id, inventory, heartbeat_at, started_at FROM nodes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	defer rows.Close()
	var out []store.Node
	for rows.Next() {
		var n store.Node
		var inv string
		var hb, st int64
		if err := rows.Scan(&n.ID, &inv, &hb, &st); err != nil {
			return nil, fmt.Errorf("read nodes: %w", err)
		}
		n.Inventory = json.RawMessage(inv)
		n.Heartbeat, n.StartedAt = fromNanos(hb), fromNanos(st)
		out = append(out, n)
	}
	return out, rows.Err()
}

// DeleteNode implements store.Store.
func (s *Store) DeleteNode(ctx context.Context, id string) error {
	return s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		_, err := tx.Exec(ctx, `DELETE FROM nodes WHERE id = $1`, id)
		return err
	})
}

// AcquireLease implements store.Store.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	args := []any{name, holder, int64(ttl)}
	now := s.d.LeaseNow
	if now == "" {
		args = append(args, time.Now().UnixNano())
		now = "$4"
	}
	q := `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, ` + now + ` + $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at < ` + now + `
		RETURNING holder`
	var got bool
	err := s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("acquire lease: %w", err)
		}
		got = rows.Next()
		rows.Close()
		return rows.Err()
	})
	return got, err
}

// ReleaseLease implements store.Store.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		_, err := tx.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder)
		return err
	})
}
