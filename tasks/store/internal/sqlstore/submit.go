package sqlstore

import (
	"context"
	"fmt"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// CreateRuns implements store.Store.
func (s *Store) CreateRuns(ctx context.Context, runs []store.NewRun) ([]store.CreateResult, error) {
	res := make([]store.CreateResult, len(runs))
	err := s.withTx(ctx, func(tx Tx, notes *[]store.Notification) error {
		for i := range res {
			res[i] = store.CreateResult{Name: runs[i].Name, Created: true}
		}
		if err := s.claimIdempotencyKeys(ctx, tx, runs, res); err != nil {
			return err
		}
		var fresh []int
		for i := range res {
			if res[i].Created {
				fresh = append(fresh, i)
			}
		}
		if err := s.insertRuns(ctx, tx, runs, fresh, res); err != nil {
			return err
		}
		if len(fresh) > 0 {
			*notes = append(*notes, store.Notification{Kind: store.NotifySubmitted})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// claimIdempotencyKeys inserts the keys of runs; a run whose key exists
// (from an earlier request, a concurrent process, or earlier in this very
// batch) is marked not created, with the existing run's name or a conflict.
func (s *Store) claimIdempotencyKeys(ctx context.Context, tx Tx, runs []store.NewRun, res []store.CreateResult) error {
	type key struct{ owner, key string }
	var keyed []int
	for i, r := range runs {
		if r.IdempotencyKey != "" {
			keyed = append(keyed, i)
		}
	}
	if len(keyed) == 0 {
		return nil
	}
	inserted := map[key]bool{}
	err := s.valuesChunks(keyed, 5, `INSERT INTO idempotency_keys (owner, key, hash, run, created_at) VALUES `,
		` ON CONFLICT (owner, key) DO NOTHING RETURNING owner, key`,
		func(args []any, i int) []any {
			r := &runs[i]
			return append(args, r.Caller.Subject, r.IdempotencyKey, r.RequestHash, r.Name, nanos(r.CreatedAt))
		},
		func(q string, args []any, _ []int) error {
			rows, err := tx.Query(ctx, q, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var k key
				if err := rows.Scan(&k.owner, &k.key); err != nil {
					return err
				}
				inserted[k] = true
			}
			return rows.Err()
		})
	if err != nil {
		return fmt.Errorf("insert idempotency keys: %w", err)
	}
	for _, i := range keyed {
		r := runs[i]
		k := key{r.Caller.Subject, r.IdempotencyKey}
		if inserted[k] {
			// The first run of the batch with this key owns it; later
			// duplicates look it up below.
			delete(inserted, k)
			continue
		}
		rows, err := tx.Query(ctx, `SELECT hash, run FROM idempotency_keys WHERE owner = $1 AND key = $2`, k.owner, k.key)
		if err != nil {
			return fmt.Errorf("read idempotency key: %w", err)
		}
		var hash, run string
		found := rows.Next()
		if found {
			err = rows.Scan(&hash, &run)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return fmt.Errorf("read idempotency key: %w", err)
		}
		if !found {
			return fmt.Errorf("idempotency key of %s vanished", r.Name)
		}
		res[i] = store.CreateResult{Name: run}
		if hash != r.RequestHash {
			res[i].Err = store.ErrIdempotencyConflict
		}
	}
	return nil
}

func (s *Store) insertRuns(ctx context.Context, tx Tx, runs []store.NewRun, idx []int, res []store.CreateResult) error {
	// Creation times in seq order (store.CreatedSkew): from here to the
	// end of the INSERTs, which take the seqs, no other batch of this
	// process inserts runs, and none of these was created before the
	// latest this process stored.
	s.created.Lock()
	defer s.created.Unlock()
	for _, i := range idx {
		if runs[i].CreatedAt.After(s.lastCreated) {
			s.lastCreated = runs[i].CreatedAt
		}
		res[i].CreatedAt = s.lastCreated
	}
	if s.d.ArrayInsert {
		return s.insertRunsArrays(ctx, tx, runs, idx, res)
	}
	seqs := map[string]int64{}
	suffix := ` RETURNING name, seq`
	if s.d.LastInsertSeq != "" {
		suffix = ""
	}
	err := s.valuesChunks(idx, 16, `INSERT INTO runs (name, project, domain, task, version, owner, caller, phase,
			priority, inputs, webhook, webhook_events, created_at, event_seq, attempt, trace_parent) VALUES `, suffix,
		func(args []any, i int) []any {
			r := &runs[i]
			return append(args, r.Name, r.Project, r.Domain, r.Task, r.Version, r.Caller.Subject,
				jsonText(r.Caller), string(tasks.PhaseQueued), r.Priority, bytesOrNil(r.Inputs),
				r.Webhook, jsonList(r.WebhookEvents), nanos(res[i].CreatedAt), 1, 0, r.TraceParent)
		},
		func(q string, args []any, chunk []int) error {
			if s.d.LastInsertSeq == "" {
				rows, err := tx.Query(ctx, q, args...)
				return readSeqs(rows, err, seqs)
			}
			// One writer: the rows of one INSERT take consecutive seqs,
			// the last of which the database reports.
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("insert runs: %w", err)
			}
			rows, err := tx.Query(ctx, s.d.LastInsertSeq)
			if err != nil {
				return fmt.Errorf("insert runs: %w", err)
			}
			defer rows.Close()
			var last int64
			if !rows.Next() {
				return fmt.Errorf("insert runs: no last seq")
			}
			if err := rows.Scan(&last); err != nil {
				return fmt.Errorf("insert runs: %w", err)
			}
			for j, i := range chunk {
				seqs[runs[i].Name] = last - int64(len(chunk)-1-j)
			}
			return nil
		})
	if err != nil {
		return err
	}
	for _, i := range idx {
		res[i].Seq = seqs[runs[i].Name]
	}
	return nil
}

// readSeqs reads the (name, seq) rows an INSERT … RETURNING name, seq
// gave (or its error) into seqs.
func readSeqs(rows Rows, err error, seqs map[string]int64) error {
	if err != nil {
		return fmt.Errorf("insert runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var seq int64
		if err := rows.Scan(&name, &seq); err != nil {
			return fmt.Errorf("insert runs: %w", err)
		}
		seqs[name] = seq
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("insert runs: %w", err)
	}
	return nil
}

// insertRunsArrays inserts runs[idx] with one statement whatever their
// number: each column travels as one array parameter (PostgreSQL's
// unnest), so the statement text, and the server's prepared plan, is
// always the same.
func (s *Store) insertRunsArrays(ctx context.Context, tx Tx, runs []store.NewRun, idx []int, res []store.CreateResult) error {
	if len(idx) == 0 {
		return nil
	}
	n := len(idx)
	var (
		names, projects, domains, taskNames, versions = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		owners, callers, webhooks, events             = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		traces                                        = make([]string, n)
		priorities, created                           = make([]int64, n), make([]int64, n)
		inputs                                        = make([][]byte, n)
	)
	for j, i := range idx {
		r := &runs[i]
		names[j], projects[j], domains[j], taskNames[j], versions[j] = r.Name, r.Project, r.Domain, r.Task, r.Version
		owners[j], callers[j], webhooks[j], events[j] = r.Caller.Subject, jsonText(r.Caller), r.Webhook, jsonList(r.WebhookEvents)
		priorities[j], created[j], traces[j] = int64(r.Priority), nanos(res[i].CreatedAt), r.TraceParent
		if len(r.Inputs) > 0 {
			inputs[j] = r.Inputs
		}
	}
	rows, err := tx.Query(ctx, `INSERT INTO runs (name, project, domain, task, version, owner, caller, phase,
			priority, inputs, webhook, webhook_events, created_at, event_seq, attempt, trace_parent)
		SELECT n, p, d, t, v, o, c, $13, pr, i, w, we, ca, 1, 0, tp
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::bigint[], $9::bytea[], $10::text[], $11::text[], $12::bigint[], $14::text[]) AS u(n, p, d, t, v, o, c, pr, i, w, we, ca, tp)
		RETURNING name, seq`,
		names, projects, domains, taskNames, versions, owners, callers, priorities, inputs, webhooks, events, created,
		string(tasks.PhaseQueued), traces)
	seqs := make(map[string]int64, n)
	if err := readSeqs(rows, err, seqs); err != nil {
		return err
	}
	for _, i := range idx {
		res[i].Seq = seqs[runs[i].Name]
	}
	return nil
}
