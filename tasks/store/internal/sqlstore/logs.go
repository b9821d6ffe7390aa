package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/taskgate/taskgate/tasks/store"
)

// AppendLogs implements store.Store.
func (s *Store) AppendLogs(ctx context.Context, lines []store.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	rows := make([][]any, len(lines))
	for i, l := range lines {
		rows[i] = []any{l.Run, l.Attempt, nanos(l.At), cleanText(l.Level), cleanText(l.Message), cleanText(string(l.Attrs))}
	}
	return s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		if err := s.insertRows(ctx, tx, `INSERT INTO logs (run, attempt, at, level, message, attrs) VALUES `, rows); err != nil {
			return fmt.Errorf("insert logs: %w", err)
		}
		return nil
	})
}

// Logs implements store.Store.
func (s *Store) Logs(ctx context.Context, run string) ([]store.LogLine, error) {
	rows, err := s.db.Query(ctx, `SELECT attempt, at, level, message, attrs FROM logs WHERE run = $1 ORDER BY id`, run)
	if err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	defer rows.Close()
	var out []store.LogLine
	for rows.Next() {
		l := store.LogLine{Run: run}
		var at int64
		var attrs string
		if err := rows.Scan(&l.Attempt, &at, &l.Level, &l.Message, &attrs); err != nil {
			return nil, fmt.Errorf("read logs: %w", err)
		}
		l.At = fromNanos(at)
		if attrs != "" {
			l.Attrs = json.RawMessage(attrs)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}
