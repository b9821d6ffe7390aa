package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// enqueueWebhook adds the outbox delivery that ev causes, if the run asked
// for callbacks of that kind: "start" when it first runs, "completed" when
// it ends (the default filter). It reports whether it added one.
func (s *Store) enqueueWebhook(ctx context.Context, tx Tx, run *store.StoredRun, ev tasks.Event) (bool, error) {
	if run.Webhook == "" {
		return false, nil
	}
	var kind string
	switch {
	case ev.Phase.Terminal():
		kind = store.WebhookCompleted
	case ev.Phase == tasks.PhaseRunning && run.StartedAt != nil && run.StartedAt.Equal(ev.At):
		kind = store.WebhookStart
	default:
		return false, nil
	}
	filter := run.WebhookEvents
	if len(filter) == 0 {
		filter = []string{store.WebhookCompleted}
	}
	want := false
	for _, f := range filter {
		want = want || f == kind
	}
	if !want {
		return false, nil
	}
	payload, err := json.Marshal(run.Run)
	if err != nil {
		return false, err
	}
	if _, err := s.insertDelivery(ctx, tx, store.NewDelivery{Run: run.Name, URL: run.Webhook, Event: kind, Payload: payload, CreatedAt: ev.At}); err != nil {
		return false, err
	}
	return true, nil
}

// EnqueueDelivery implements store.Store.
func (s *Store) EnqueueDelivery(ctx context.Context, d store.NewDelivery) (store.Delivery, error) {
	var out store.Delivery
	err := s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		var err error
		out, err = s.insertDelivery(ctx, tx, d)
		return err
	})
	return out, err
}

func (s *Store) insertDelivery(ctx context.Context, tx Tx, d store.NewDelivery) (store.Delivery, error) {
	if d.ID == "" {
		d.ID = NewID("msg_")
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = time.Now()
	}
	// The run's deliveries are enqueued by changes of the run, which hold
	// its row: the next seq is read without a race.
	// The delivery continues the trace its run was submitted in.
	rows, err := tx.Query(ctx, `INSERT INTO deliveries (id, run, url, event, payload, state, next_attempt_at, created_at, seq, trace_parent)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (SELECT COALESCE(MAX(seq), 0) + 1 FROM deliveries WHERE run = $2),
			COALESCE((SELECT trace_parent FROM runs WHERE name = $2), ''))
		RETURNING seq, trace_parent`,
		d.ID, d.Run, d.URL, d.Event, bytesOrNil(d.Payload), store.DeliveryPending, nanos(d.CreatedAt), nanos(d.CreatedAt))
	if err != nil {
		return store.Delivery{}, fmt.Errorf("insert delivery: %w", err)
	}
	defer rows.Close()
	out := store.Delivery{NewDelivery: d, State: store.DeliveryPending, NextAttemptAt: d.CreatedAt}
	if rows.Next() {
		err = rows.Scan(&out.Seq, &out.TraceParent)
	}
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return store.Delivery{}, fmt.Errorf("insert delivery: %w", err)
	}
	return out, nil
}

const deliveryCols = `id, run, url, event, payload, state, next_attempt_at, created_at, seq, trace_parent, attempts`

func scanDeliveries(rows Rows) ([]store.Delivery, error) {
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		var d store.Delivery
		var payload []byte
		var next, created int64
		if err := rows.Scan(&d.ID, &d.Run, &d.URL, &d.Event, &payload, &d.State, &next, &created, &d.Seq, &d.TraceParent, &d.AttemptsMade); err != nil {
			return nil, fmt.Errorf("read deliveries: %w", err)
		}
		d.Payload = json.RawMessage(payload)
		d.NextAttemptAt, d.CreatedAt = fromNanos(next), fromNanos(created)
		out = append(out, d)
	}
	return out, rows.Err()
}

// ClaimDueDeliveries implements store.Store.
func (s *Store) ClaimDueDeliveries(ctx context.Context, now time.Time, limit int) ([]store.Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []store.Delivery
	err := s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		if err := s.outboxPlan(ctx, tx); err != nil {
			return err
		}
		var err error
		out, err = s.claimDeliveries(ctx, tx, now, limit)
		return err
	})
	return out, err
}

// outboxPlan applies the dialect's OutboxPlan in tx, if it has one.
func (s *Store) outboxPlan(ctx context.Context, tx Tx) error {
	if s.d.OutboxPlan == "" {
		return nil
	}
	rows, err := tx.Query(ctx, s.d.OutboxPlan)
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	if err != nil {
		return fmt.Errorf("outbox plan settings: %w", err)
	}
	return nil
}

func (s *Store) claimDeliveries(ctx context.Context, tx Tx, now time.Time, limit int) ([]store.Delivery, error) {
	q, args := ClaimDeliveriesQuery(s, now, limit)
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	return scanDeliveries(rows)
}

// ClaimDeliveriesQuery is the statement that claims up to limit deliveries
// due at now, and its arguments (exported for the plan tests, which run it
// after OutboxPlanQuery).
func ClaimDeliveriesQuery(s *Store, now time.Time, limit int) (string, []any) {
	// The state is a literal, not a parameter: only then may the planner
	// use the partial index of pending deliveries instead of scanning
	// every delivery ever made. A delivery waits while an earlier one of
	// its run is pending (claimed or not), so that a run's callbacks
	// arrive in order; deliveries_run finds those.
	return `UPDATE deliveries SET next_attempt_at = $1 WHERE id IN (
		SELECT d.id FROM deliveries d WHERE d.state = '` + store.DeliveryPending + `' AND d.next_attempt_at <= $2
		AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.run = d.run
			AND p.state = '` + store.DeliveryPending + `' AND (p.seq, p.id) < (d.seq, d.id))
		ORDER BY d.next_attempt_at LIMIT $3` + s.d.SkipLocked + `) RETURNING ` + deliveryCols,
		[]any{nanos(now.Add(store.ClaimTTL)), nanos(now), limit}
}

// OutboxPlanQuery is the dialect's OutboxPlan (exported for the plan
// tests).
func OutboxPlanQuery(s *Store) string { return s.d.OutboxPlan }

// RecordDeliveryAttempt implements store.Store.
func (s *Store) RecordDeliveryAttempt(ctx context.Context, id string, a store.DeliveryAttempt) error {
	return s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		pending, err := s.recordDelivery(ctx, tx, store.DeliveryRecord{ID: id, Attempt: a})
		if err != nil || pending {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT 1 FROM deliveries WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("read delivery: %w", err)
		}
		found := rows.Next()
		rows.Close()
		if !found {
			return store.ErrNotFound
		}
		return nil // settled by another worker: the late attempt changes nothing
	})
}

// RecordDeliveries implements store.Store.
func (s *Store) RecordDeliveries(ctx context.Context, rs []store.DeliveryRecord, next store.DeliveryClaim) ([]store.Delivery, error) {
	if len(rs) == 0 && next.Limit <= 0 {
		return nil, nil
	}
	var out []store.Delivery
	err := s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		if err := s.outboxPlan(ctx, tx); err != nil {
			return err
		}
		if err := s.recordDeliveries(ctx, tx, rs); err != nil {
			return err
		}
		if next.Limit <= 0 {
			return nil
		}
		var err error
		out, err = s.claimDeliveries(ctx, tx, next.Now, next.Limit)
		return err
	})
	return out, err
}

// recordDeliveries writes rs in tx: when their deliveries are distinct,
// with a few multi-row statements whatever their number (the
// postponements, the attempts' updates, their rows); else one by one, in
// order.
func (s *Store) recordDeliveries(ctx context.Context, tx Tx, rs []store.DeliveryRecord) error {
	var tried, postponed []int
	seen := make(map[string]bool, len(rs))
	for i, r := range rs {
		if seen[r.ID] {
			for _, r := range rs {
				if _, err := s.recordDelivery(ctx, tx, r); err != nil {
					return err
				}
			}
			return nil
		}
		seen[r.ID] = true
		if r.Postponed {
			postponed = append(postponed, i)
		} else {
			tried = append(tried, i)
		}
	}
	// Only pending deliveries change, as in recordDelivery. The times are
	// cast where the VALUES list would make them text (PostgreSQL). The
	// state a delivery must be in (expect, pending) is a column of the
	// list, not a literal: a literal matches the predicate of the partial
	// index of pending deliveries, and a planner without statistics of
	// the outbox then walks that index, every pending delivery, instead of
	// probing the primary key once per record.
	err := s.typedValuesChunks(postponed, []string{"", "bigint", ""}, `WITH v (id, next, expect) AS (VALUES `,
		`) UPDATE deliveries SET next_attempt_at = CAST(v.next AS BIGINT) FROM v
		WHERE deliveries.id = v.id AND deliveries.state = v.expect`,
		func(args []any, i int) []any {
			return append(args, rs[i].ID, nanos(rs[i].Attempt.NextAttemptAt), store.DeliveryPending)
		},
		func(q string, args []any, _ []int) error {
			_, err := tx.Exec(ctx, q, args...)
			return err
		})
	if err != nil {
		return fmt.Errorf("postpone deliveries: %w", err)
	}
	numbers := make(map[string]int, len(tried))
	err = s.attemptUpdates(rs, tried, func(q string, args []any, _ []int) error {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				return err
			}
			numbers[id] = n
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("update deliveries: %w", err)
	}
	var attempts [][]any
	for _, i := range tried {
		r := rs[i]
		if n, ok := numbers[r.ID]; ok {
			attempts = append(attempts, []any{r.ID, n, nanos(r.Attempt.At), r.Attempt.StatusCode, r.Attempt.Error})
		}
	}
	if err := s.insertRows(ctx, tx, `INSERT INTO delivery_attempts (delivery, number, at, status, error) VALUES `, attempts); err != nil {
		return fmt.Errorf("insert delivery attempts: %w", err)
	}
	return nil
}

// attemptUpdates builds the statements that set the state, due time and
// attempt count of the deliveries rs[i] for i in idx (distinct, not
// postponed), pending ones only, returning their ids and attempt counts,
// and calls exec with each (typedValuesChunks).
func (s *Store) attemptUpdates(rs []store.DeliveryRecord, idx []int, exec func(q string, args []any, chunk []int) error) error {
	return s.typedValuesChunks(idx, []string{"", "", "bigint", ""}, `WITH v (id, state, next, expect) AS (VALUES `,
		`) UPDATE deliveries SET state = v.state, next_attempt_at = CAST(v.next AS BIGINT), attempts = deliveries.attempts + 1
		FROM v WHERE deliveries.id = v.id AND deliveries.state = v.expect
		RETURNING deliveries.id, deliveries.attempts`,
		func(args []any, i int) []any {
			return append(args, rs[i].ID, deliveryState(rs[i].Attempt), nanos(rs[i].Attempt.NextAttemptAt), store.DeliveryPending)
		}, exec)
}

// RecordDeliveriesQuery is the first statement that records the attempts
// rs (distinct, not postponed), and its arguments (exported for the plan
// tests, which run it after OutboxPlanQuery).
func RecordDeliveriesQuery(s *Store, rs []store.DeliveryRecord) (q string, args []any) {
	idx := make([]int, len(rs))
	for i := range idx {
		idx[i] = i
	}
	_ = s.attemptUpdates(rs, idx, func(sq string, sargs []any, _ []int) error {
		if q == "" {
			q, args = sq, sargs
		}
		return nil
	})
	return q, args
}

// deliveryState is the state a delivery is in after attempt a.
func deliveryState(a store.DeliveryAttempt) string {
	switch {
	case !a.Done:
		return store.DeliveryPending
	case a.StatusCode >= 200 && a.StatusCode < 300:
		return store.DeliveryDelivered
	}
	return store.DeliveryFailed
}

// recordDelivery writes r in tx, and reports whether the delivery was
// pending: only a pending delivery changes, so that a worker whose claim
// expired cannot reopen one that another worker has settled meanwhile.
func (s *Store) recordDelivery(ctx context.Context, tx Tx, r store.DeliveryRecord) (bool, error) {
	a := r.Attempt
	if r.Postponed {
		n, err := tx.Exec(ctx, `UPDATE deliveries SET next_attempt_at = $1 WHERE id = $2 AND state = $3`,
			nanos(a.NextAttemptAt), r.ID, store.DeliveryPending)
		if err != nil {
			return false, fmt.Errorf("postpone delivery: %w", err)
		}
		return n > 0, nil
	}
	rows, err := tx.Query(ctx, `UPDATE deliveries SET state = $1, next_attempt_at = $2, attempts = attempts + 1
		WHERE id = $3 AND state = $4 RETURNING attempts`, deliveryState(a), nanos(a.NextAttemptAt), r.ID, store.DeliveryPending)
	if err != nil {
		return false, fmt.Errorf("update delivery: %w", err)
	}
	number := 0
	pending := rows.Next()
	if pending {
		err = rows.Scan(&number)
	}
	if err == nil {
		err = rows.Err()
	}
	rows.Close()
	if err != nil {
		return false, fmt.Errorf("update delivery: %w", err)
	}
	if !pending {
		return false, nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO delivery_attempts (delivery, number, at, status, error) VALUES ($1, $2, $3, $4, $5)`,
		r.ID, number, nanos(a.At), a.StatusCode, a.Error)
	if err != nil {
		return false, fmt.Errorf("insert delivery attempt: %w", err)
	}
	return true, nil
}

// ListDeliveries implements store.Store.
func (s *Store) ListDeliveries(ctx context.Context, run string) ([]store.Delivery, error) {
	rows, err := s.db.Query(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE run = $1 ORDER BY seq, id`, run)
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	ds, err := scanDeliveries(rows)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		rows, err := s.db.Query(ctx, `SELECT at, status, error FROM delivery_attempts WHERE delivery = $1 ORDER BY number`, ds[i].ID)
		if err != nil {
			return nil, fmt.Errorf("read delivery attempts: %w", err)
		}
		for rows.Next() {
			var a store.DeliveryAttempt
			var at int64
			if err := rows.Scan(&at, &a.StatusCode, &a.Error); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read delivery attempts: %w", err)
			}
			a.At = fromNanos(at)
			ds[i].Attempts = append(ds[i].Attempts, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if n := len(ds[i].Attempts); n > 0 && ds[i].State != store.DeliveryPending {
			ds[i].Attempts[n-1].Done = true
		}
	}
	return ds, nil
}
