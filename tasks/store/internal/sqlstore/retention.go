package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/taskgate/taskgate/tasks/store"
)

// PurgeRuns implements store.Store.
func (s *Store) PurgeRuns(ctx context.Context, finishedBefore time.Time) (int, error) {
	var n int64
	err := s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		cut := nanos(finishedBefore)
		if _, err := tx.Exec(ctx, `DELETE FROM logs WHERE run IN (
			SELECT name FROM runs WHERE purged = 0 AND finished_at > 0 AND finished_at < $1)`, cut); err != nil {
			return fmt.Errorf("purge logs: %w", err)
		}
		var err error
		n, err = tx.Exec(ctx, `UPDATE runs SET inputs = NULL, outputs = NULL, purged = 1
			WHERE purged = 0 AND finished_at > 0 AND finished_at < $1`, cut)
		if err != nil {
			return fmt.Errorf("purge runs: %w", err)
		}
		return nil
	})
	return int(n), err
}

// DeleteRuns implements store.Store.
func (s *Store) DeleteRuns(ctx context.Context, finishedBefore time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var deleted int
	err := s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		rows, err := tx.Query(ctx, `SELECT name FROM runs WHERE finished_at > 0 AND finished_at < $1
			ORDER BY finished_at LIMIT $2`+s.d.ForUpdate, nanos(finishedBefore), limit)
		if err != nil {
			return fmt.Errorf("find old runs: %w", err)
		}
		var names []any
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return fmt.Errorf("find old runs: %w", err)
			}
			names = append(names, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("find old runs: %w", err)
		}
		idx := make([]int, len(names))
		for i := range idx {
			idx[i] = i
		}
		for _, chunk := range chunks(idx, min(s.d.MaxParams, 256)) {
			args := make([]any, len(chunk))
			var in strings.Builder
			for j, i := range chunk {
				args[j] = names[i]
				if j > 0 {
					in.WriteByte(',')
				}
				in.WriteString("$" + strconv.Itoa(j+1))
			}
			list := "(" + in.String() + ")"
			for _, q := range []string{
				`DELETE FROM delivery_attempts WHERE delivery IN (SELECT id FROM deliveries WHERE run IN ` + list + `)`,
				`DELETE FROM deliveries WHERE run IN ` + list,
				`DELETE FROM idempotency_keys WHERE run IN ` + list,
				`DELETE FROM logs WHERE run IN ` + list,
				`DELETE FROM events WHERE run IN ` + list,
				`DELETE FROM attempts WHERE run IN ` + list,
				`DELETE FROM runs WHERE name IN ` + list,
			} {
				n, err := tx.Exec(ctx, q, args...)
				if err != nil {
					return fmt.Errorf("delete old runs: %w", err)
				}
				if strings.HasPrefix(q, "DELETE FROM runs") {
					deleted += int(n)
				}
			}
		}
		return nil
	})
	return deleted, err
}
