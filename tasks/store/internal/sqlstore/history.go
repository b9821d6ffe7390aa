package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// attemptChange is an update of a run's current attempt that a change
// implies: its phase, and when it ended its error and end time.
type attemptChange struct {
	run    string
	number int
	at     int64
}

// afterTransition records what the change t of run (as the UPDATE left it)
// implies: its attempt record (a change of an existing attempt goes to
// attempts, for changeAttempts), its events, its webhook delivery.
func (s *Store) afterTransition(ctx context.Context, tx Tx, t *store.Transition, run *store.StoredRun, from []tasks.Phase, attempts *[]attemptChange, buf *appends) (store.TransitionResult, error) {
	res := store.TransitionResult{Applied: true, Run: run}
	at := nanos(t.At)

	if t.Bind != nil {
		buf.attempt(run.Name, []any{run.Name, run.Attempt, t.Bind.Node, jsonList(t.Bind.Devices), string(t.To), "", at, int64(0)})
	} else if run.Attempt > 0 && (attemptPhase(t) != "" || t.To == tasks.PhaseRunning) {
		// The attempt row may still be in buf (bound earlier in the batch).
		if err := s.flushAppendsOf(ctx, tx, buf, run.Name); err != nil {
			return res, err
		}
		*attempts = append(*attempts, attemptChange{run: run.Name, number: run.Attempt, at: at})
	}

	// event_seq moved only when the phase changed.
	changed := true
	for _, p := range from {
		if p == t.To {
			// The run may have been in To already: a refresh, not an event.
			if err := s.flushAppendsOf(ctx, tx, buf, run.Name); err != nil {
				return res, err
			}
			changed = !s.isRefresh(ctx, tx, run)
		}
	}
	if changed && t.Start {
		ev := tasks.Event{Seq: run.EventSeq - 1, Run: run.Name, Phase: tasks.PhaseInitializing, At: fromNanos(at)}
		buf.event(ev.Run, []any{ev.Run, ev.Seq, string(ev.Phase), at, ""})
		res.Events = append(res.Events, ev)
	}
	if changed {
		ev := tasks.Event{Seq: run.EventSeq, Run: run.Name, Phase: t.To, At: fromNanos(at), Error: t.Error}
		if ev.Error == "" && t.To == tasks.PhaseQueued {
			ev.Error = t.AttemptError
		}
		buf.event(ev.Run, []any{ev.Run, ev.Seq, string(ev.Phase), at, ev.Error})
		res.Event = ev
		res.Events = append(res.Events, ev)
		queued, err := s.enqueueWebhook(ctx, tx, run, ev)
		if err != nil {
			return res, err
		}
		res.Delivery = queued
	}
	return res, nil
}

// attemptPhase is the phase t ends the current attempt in ("" when the
// attempt goes on).
func attemptPhase(t *store.Transition) tasks.Phase {
	if t.AttemptPhase == "" && t.To.Terminal() {
		return t.To
	}
	return t.AttemptPhase
}

// changeAttempts applies t's change to the current attempts cs of the
// runs of one chunk: one UPDATE, the end times differing per run.
func (s *Store) changeAttempts(ctx context.Context, tx Tx, t *store.Transition, cs []attemptChange) error {
	if len(cs) == 0 {
		return nil
	}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var q strings.Builder
	ap := attemptPhase(t)
	if ap != "" {
		ae := t.AttemptError
		if ae == "" {
			ae = t.Error
		}
		interrupted := 0
		if t.Interrupted {
			interrupted = 1
		}
		fmt.Fprintf(&q, `UPDATE attempts SET phase = %s, error = %s, interrupted = %s, finished_at = `, arg(string(ap)), arg(ae), arg(interrupted))
	} else {
		fmt.Fprintf(&q, `UPDATE attempts SET phase = %s`, arg(string(t.To)))
	}
	runs := make([]string, len(cs))
	for i, c := range cs {
		runs[i] = arg(c.run)
	}
	if ap != "" {
		if len(cs) == 1 {
			q.WriteString(arg(cs[0].at))
		} else {
			q.WriteString(`(CASE run`)
			for i, c := range cs {
				fmt.Fprintf(&q, ` WHEN %s THEN %s`, runs[i], s.d.cast(arg(c.at), "bigint"))
			}
			q.WriteString(` END)`)
		}
	}
	q.WriteString(` WHERE `)
	if ap != "" {
		q.WriteString(`finished_at = 0 AND `)
	}
	if len(cs) == 1 {
		fmt.Fprintf(&q, `run = %s AND number = %s`, runs[0], arg(cs[0].number))
	} else {
		q.WriteString(`(run, number) IN (VALUES `)
		for i, c := range cs {
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, `(%s, %s)`, runs[i], s.d.cast(arg(c.number), "bigint"))
		}
		q.WriteByte(')')
	}
	if _, err := tx.Exec(ctx, q.String(), args...); err != nil {
		if ap != "" {
			return fmt.Errorf("close attempt: %w", err)
		}
		return fmt.Errorf("update attempt: %w", err)
	}
	return nil
}

// appends buffers the rows a batch of transitions appends to the attempts
// and events tables, so that each table gets one multi-row INSERT per
// batch instead of one statement per row.
type appends struct {
	attempts, events [][]any
	// runs are the runs with rows in the buffer.
	runs map[string]bool
}

func (a *appends) attempt(run string, row []any) { a.add(&a.attempts, run, row) }
func (a *appends) event(run string, row []any)   { a.add(&a.events, run, row) }

func (a *appends) add(rows *[][]any, run string, row []any) {
	*rows = append(*rows, row)
	if a.runs == nil {
		a.runs = map[string]bool{}
	}
	a.runs[run] = true
}

// flushAppendsOf writes buf when it holds rows of run, which a statement
// is about to read or update.
func (s *Store) flushAppendsOf(ctx context.Context, tx Tx, buf *appends, run string) error {
	if !buf.runs[run] {
		return nil
	}
	return s.flushAppends(ctx, tx, buf)
}

// flushAppends writes and empties buf.
func (s *Store) flushAppends(ctx context.Context, tx Tx, buf *appends) error {
	if s.d.ArrayInsert {
		if err := insertArrays(ctx, tx, `INSERT INTO attempts (run, number, node, devices, phase, error, started_at, finished_at)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])`,
			buf.attempts); err != nil {
			return fmt.Errorf("insert attempts: %w", err)
		}
		if err := insertArrays(ctx, tx, `INSERT INTO events (run, seq, phase, at, error)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[])`, buf.events); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
	} else {
		if err := s.insertRows(ctx, tx, `INSERT INTO attempts (run, number, node, devices, phase, error, started_at, finished_at) VALUES `,
			buf.attempts); err != nil {
			return fmt.Errorf("insert attempts: %w", err)
		}
		if err := s.insertRows(ctx, tx, `INSERT INTO events (run, seq, phase, at, error) VALUES `, buf.events); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
	}
	buf.attempts, buf.events = buf.attempts[:0], buf.events[:0]
	clear(buf.runs)
	return nil
}

// isRefresh reports whether the last update left the phase as it was: the
// event with the run's current event_seq then exists already.
func (s *Store) isRefresh(ctx context.Context, tx Tx, run *store.StoredRun) bool {
	rows, err := tx.Query(ctx, `SELECT 1 FROM events WHERE run = $1 AND seq = $2`, run.Name, run.EventSeq)
	if err != nil {
		return false
	}
	defer rows.Close()
	return rows.Next()
}
