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
		rows[i] = []any{l.Run, l.Attempt, nanos(l.At), cleanText(l.Level), nonEmpty(cleanText(l.Stream), store.StreamLog), cleanText(l.Message), cleanText(string(l.Attrs))}
	}
	return s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		if err := s.insertRows(ctx, tx, `INSERT INTO logs (run, attempt, at, level, stream, message, attrs) VALUES `, rows); err != nil {
			return fmt.Errorf("insert logs: %w", err)
		}
		return nil
	})
}

// Logs implements store.Store.
func (s *Store) Logs(ctx context.Context, run string) ([]store.LogLine, error) {
	return s.readLogs(ctx, run, `SELECT id, attempt, at, level, stream, message, attrs FROM logs WHERE run = $1 ORDER BY id`, run)
}

// LogsAfter implements store.Store.
func (s *Store) LogsAfter(ctx context.Context, run string, afterSeq int64, limit int) ([]store.LogLine, error) {
	if limit <= 0 {
		return nil, nil
	}
	return s.readLogs(ctx, run, `SELECT id, attempt, at, level, stream, message, attrs FROM logs
		WHERE run = $1 AND id > $2 ORDER BY id LIMIT $3`, run, afterSeq, limit)
}

func (s *Store) readLogs(ctx context.Context, run, sql string, args ...any) ([]store.LogLine, error) {
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	defer rows.Close()
	var out []store.LogLine
	for rows.Next() {
		l := store.LogLine{Run: run}
		var at int64
		var attrs string
		if err := rows.Scan(&l.Seq, &l.Attempt, &at, &l.Level, &l.Stream, &l.Message, &attrs); err != nil {
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

// SetProgress implements store.Store.
func (s *Store) SetProgress(ctx context.Context, ps []store.ProgressUpdate) error {
	if len(ps) == 0 {
		return nil
	}
	return s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		for _, p := range ps {
			p.Progress.Message = cleanText(p.Progress.Message)
			if _, err := tx.Exec(ctx, `UPDATE runs SET progress = $1 WHERE name = $2 AND attempt = $3`,
				jsonText(p.Progress), p.Run, p.Attempt); err != nil {
				return fmt.Errorf("set progress: %w", err)
			}
		}
		return nil
	})
}
