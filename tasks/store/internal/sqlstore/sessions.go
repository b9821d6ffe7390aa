package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks/store"
)

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, se identity.Session) error {
	return s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		_, err := tx.Exec(ctx, `INSERT INTO sessions (id_hash, subject, name, email, group_names, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			se.IDHash, cleanText(se.Subject), cleanText(se.Name), cleanText(se.Email), jsonList(se.Groups),
			nanos(se.Created), nanos(se.Expires))
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		return nil
	})
}

// LookupSession implements store.Store.
func (s *Store) LookupSession(ctx context.Context, idHash string) (identity.Session, bool, error) {
	if s.closed.Load() {
		return identity.Session{}, false, store.ErrClosed
	}
	rows, err := s.db.Query(ctx, `SELECT subject, name, email, group_names, created_at, expires_at
		FROM sessions WHERE id_hash = $1`, idHash)
	if err != nil {
		return identity.Session{}, false, fmt.Errorf("read session: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return identity.Session{}, false, rows.Err()
	}
	se := identity.Session{IDHash: idHash}
	var groups string
	var created, expires int64
	if err := rows.Scan(&se.Subject, &se.Name, &se.Email, &groups, &created, &expires); err != nil {
		return identity.Session{}, false, fmt.Errorf("read session: %w", err)
	}
	se.Groups = parseList(groups)
	se.Created, se.Expires = fromNanos(created), fromNanos(expires)
	return se, true, rows.Err()
}

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	return s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE id_hash = $1`, idHash); err != nil {
			return fmt.Errorf("delete session: %w", err)
		}
		return nil
	})
}

// DeleteExpiredSessions implements store.Store.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		var err error
		n, err = tx.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, nanos(now))
		if err != nil {
			return fmt.Errorf("delete expired sessions: %w", err)
		}
		return nil
	})
	return int(n), err
}
