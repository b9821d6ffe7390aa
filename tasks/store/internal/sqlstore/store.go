package sqlstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// Store implements store.Store over a DB.
type Store struct {
	db     DB
	d      Dialect
	hub    hub
	closed atomic.Bool
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

// runCols are the columns scanRun reads, in order.
const runCols = `seq, name, project, domain, task, version, owner, caller, phase, priority,
	inputs, outputs, error, attempt, failures, node, devices, webhook, webhook_events,
	abort_reason, abort_requested, wait_reason, not_before, event_seq, created_at,
	started_at, finished_at, purged, interruptions`

var activePhases = []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources, tasks.PhaseInitializing, tasks.PhaseRunning}

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
	if s.d.Notify == nil {
		for i := range notes {
			notes[i].Local = true
		}
		s.hub.publish(notes)
	}
	return nil
}

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
	if s.d.ArrayInsert {
		return s.insertRunsArrays(ctx, tx, runs, idx, res)
	}
	seqs := map[string]int64{}
	suffix := ` RETURNING name, seq`
	if s.d.LastInsertSeq != "" {
		suffix = ""
	}
	err := s.valuesChunks(idx, 15, `INSERT INTO runs (name, project, domain, task, version, owner, caller, phase,
			priority, inputs, webhook, webhook_events, created_at, event_seq, attempt) VALUES `, suffix,
		func(args []any, i int) []any {
			r := &runs[i]
			return append(args, r.Name, r.Project, r.Domain, r.Task, r.Version, r.Caller.Subject,
				jsonText(r.Caller), string(tasks.PhaseQueued), r.Priority, bytesOrNil(r.Inputs),
				r.Webhook, jsonList(r.WebhookEvents), nanos(r.CreatedAt), 1, 0)
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
		priorities, created                           = make([]int64, n), make([]int64, n)
		inputs                                        = make([][]byte, n)
	)
	for j, i := range idx {
		r := &runs[i]
		names[j], projects[j], domains[j], taskNames[j], versions[j] = r.Name, r.Project, r.Domain, r.Task, r.Version
		owners[j], callers[j], webhooks[j], events[j] = r.Caller.Subject, jsonText(r.Caller), r.Webhook, jsonList(r.WebhookEvents)
		priorities[j], created[j] = int64(r.Priority), nanos(r.CreatedAt)
		if len(r.Inputs) > 0 {
			inputs[j] = r.Inputs
		}
	}
	rows, err := tx.Query(ctx, `INSERT INTO runs (name, project, domain, task, version, owner, caller, phase,
			priority, inputs, webhook, webhook_events, created_at, event_seq, attempt)
		SELECT n, p, d, t, v, o, c, $13, pr, i, w, we, ca, 1, 0
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::bigint[], $9::bytea[], $10::text[], $11::text[], $12::bigint[]) AS u(n, p, d, t, v, o, c, pr, i, w, we, ca)
		RETURNING name, seq`,
		names, projects, domains, taskNames, versions, owners, callers, priorities, inputs, webhooks, events, created,
		string(tasks.PhaseQueued))
	seqs := make(map[string]int64, n)
	if err := readSeqs(rows, err, seqs); err != nil {
		return err
	}
	for _, i := range idx {
		res[i].Seq = seqs[runs[i].Name]
	}
	return nil
}

// Transition implements store.Store.
//
// Changes of a batch that differ only by run (a scheduling round binding
// CPU runs to one node, or marking its unplaced runs waiting) are applied
// together: one UPDATE for the group, and the rows every change appends
// (attempts, events) in multi-row INSERTs. Changes of a run that appears
// more than once in the batch are applied one by one, in order.
func (s *Store) Transition(ctx context.Context, ts []store.Transition) ([]store.TransitionResult, error) {
	ts = cleanTransitions(ts)
	res := make([]store.TransitionResult, len(ts))
	err := s.withTx(ctx, func(tx Tx, notes *[]store.Notification) error {
		var buf appends
		for _, g := range groupTransitions(ts) {
			ms := make([]*store.Transition, len(g))
			for j, i := range g {
				ms[j] = &ts[i]
			}
			rs, err := s.transitionRuns(ctx, tx, ms, "", &buf)
			if err != nil {
				if len(g) == 1 {
					return fmt.Errorf("transition %s to %s: %w", ms[0].Run, ms[0].To, err)
				}
				return fmt.Errorf("transition %d runs to %s: %w", len(g), ms[0].To, err)
			}
			for j, i := range g {
				res[i] = rs[j]
			}
		}
		for _, r := range res {
			for _, ev := range r.Events {
				*notes = append(*notes, store.Notification{Kind: store.NotifyEvent, Run: ev.Run, Seq: ev.Seq, Phase: ev.Phase, Node: r.Run.Node, Attempt: r.Run.Attempt,
					Delivery: r.Delivery && ev.Seq == r.Event.Seq})
			}
		}
		return s.flushAppends(ctx, tx, &buf)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// groupTransitions partitions the indexes of ts into groups applied by one
// transitionRuns each, in order: changes identical but for the run, the
// time and the outputs (a batch of finishes), of runs that no other change
// of ts touches, share a group (placed where its first member was); every
// other change is a group of one.
func groupTransitions(ts []store.Transition) [][]int {
	if len(ts) == 1 {
		return [][]int{{0}}
	}
	count := make(map[string]int, len(ts))
	for i := range ts {
		count[ts[i].Run]++
	}
	var groups [][]int
	byKey := map[string]int{} // key -> index in groups
	for i := range ts {
		t := &ts[i]
		if count[t.Run] > 1 {
			groups = append(groups, []int{i})
			continue
		}
		k := groupKey(t)
		if g, ok := byKey[k]; ok {
			groups[g] = append(groups[g], i)
			continue
		}
		byKey[k] = len(groups)
		groups = append(groups, []int{i})
	}
	return groups
}

// groupKey is every field of t but Run, At and Outputs, which each member
// of a group sets for itself.
func groupKey(t *store.Transition) string {
	var sb strings.Builder
	sb.WriteString(jsonList(phaseStrings(t.From)))
	fmt.Fprintf(&sb, "\x00%d\x00%s\x00%s", t.Attempt, t.Node, t.To)
	if t.Bind != nil {
		fmt.Fprintf(&sb, "\x00bind\x00%s\x00%s", t.Bind.Node, jsonList(t.Bind.Devices))
	}
	fmt.Fprintf(&sb, "\x00%t\x00%s\x00%s\x00%s\x00%d\x00%t\x00%t\x00%s",
		t.Start, t.AttemptPhase, t.AttemptError, t.Error, nanos(t.NotBefore), t.CountFailure, t.Interrupted, t.WaitReason)
	return sb.String()
}

func phaseStrings(ps []tasks.Phase) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

// transition applies t alone, writing what it appends at once.
// Its only caller, RequestAbort, has cleaned the reason its text comes from.
func (s *Store) transition(ctx context.Context, tx Tx, t *store.Transition, abortReason string) (store.TransitionResult, error) {
	var buf appends
	res, err := s.transitionRuns(ctx, tx, []*store.Transition{t}, abortReason, &buf)
	if err != nil {
		return store.TransitionResult{}, err
	}
	return res[0], s.flushAppends(ctx, tx, &buf)
}

// maxCaseRows bounds the runs of one UPDATE whose values differ per run:
// each row evaluates a CASE over the runs of its statement.
const maxCaseRows = 32

// transitionRuns applies ms, changes of distinct runs identical but for
// the run, the time and the outputs (groupKey), with one UPDATE per chunk
// of runs, and returns the results in the order of ms. The rows it
// appends (the attempts it starts, the events) go to buf, written by
// flushAppends before anything reads them; the attempts it closes are
// updated per chunk.
func (s *Store) transitionRuns(ctx context.Context, tx Tx, ms []*store.Transition, abortReason string, buf *appends) ([]store.TransitionResult, error) {
	t := ms[0]
	if !t.To.Valid() {
		return nil, fmt.Errorf("invalid phase %q", t.To)
	}
	if t.Start && (t.Bind == nil || t.To != tasks.PhaseRunning) {
		return nil, errors.New("transition: Start needs Bind and To running")
	}
	from := t.From
	if len(from) == 0 {
		from = activePhases
	}
	for _, p := range from {
		if p.Terminal() {
			return nil, fmt.Errorf("terminal phase %q in From", p)
		}
	}
	results := make([]store.TransitionResult, len(ms))
	pos := make(map[string]int, len(ms))
	for i, m := range ms {
		pos[m.Run] = i
	}
	idx := make([]int, len(ms))
	for i := range idx {
		idx[i] = i
	}
	limit := s.d.MaxParams - 32 // the parameters that are not per run
	for _, m := range ms[1:] {
		if !m.At.Equal(t.At) || len(m.Outputs) > 0 || len(t.Outputs) > 0 {
			limit = min(limit, maxCaseRows) // values per run: CASE
			break
		}
	}
	for _, chunk := range chunks(idx, limit) {
		q, args := s.transitionUpdate(ms, chunk, from, abortReason)
		runs, err := s.queryRuns(ctx, tx, q, args...)
		if err != nil {
			return nil, err
		}
		var closes []attemptChange
		for _, run := range runs {
			i, ok := pos[run.Name]
			if !ok {
				return nil, fmt.Errorf("update returned run %s not asked for", run.Name)
			}
			r, err := s.afterTransition(ctx, tx, ms[i], run, from, &closes, buf)
			if err != nil {
				return nil, err
			}
			results[i] = r
		}
		if err := s.changeAttempts(ctx, tx, t, closes); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// transitionUpdate is the UPDATE … RETURNING that applies the changes
// ms[chunk] to their runs.
func (s *Store) transitionUpdate(ms []*store.Transition, chunk []int, from []tasks.Phase, abortReason string) (string, []any) {
	t := ms[chunk[0]]
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	names := make([]string, len(chunk))
	for j, i := range chunk {
		names[j] = arg(ms[i].Run)
	}
	// perRun is the value of a column that may differ per run: one
	// parameter when it does not in this chunk, else a CASE on the name.
	perRun := func(v func(m *store.Transition) any, same func(a, b *store.Transition) bool, typ string) string {
		uniform := true
		for _, i := range chunk[1:] {
			uniform = uniform && same(ms[chunk[0]], ms[i])
		}
		if uniform {
			return arg(v(t))
		}
		var b strings.Builder
		b.WriteString("(CASE name")
		for j, i := range chunk {
			fmt.Fprintf(&b, " WHEN %s THEN %s", names[j], s.d.cast(arg(v(ms[i])), typ))
		}
		b.WriteString(" END)")
		return b.String()
	}
	at := func() string {
		return perRun(func(m *store.Transition) any { return nanos(m.At) },
			func(a, b *store.Transition) bool { return a.At.Equal(b.At) }, "bigint")
	}

	step := 1 // events the change records
	if t.Start {
		step = 2
	}
	var set strings.Builder
	to := arg(string(t.To))
	fmt.Fprintf(&set, `phase = %s, event_seq = event_seq + (CASE WHEN phase = %s THEN 0 ELSE %d END), wait_reason = %s`,
		to, to, step, arg(t.WaitReason))
	if t.Bind != nil {
		fmt.Fprintf(&set, `, attempt = attempt + 1, node = %s, devices = %s, error = ''`, arg(t.Bind.Node), arg(jsonList(t.Bind.Devices)))
	}
	switch {
	case t.To == tasks.PhaseRunning:
		fmt.Fprintf(&set, `, started_at = (CASE WHEN started_at = 0 THEN %s ELSE started_at END)`, at())
	case t.To == tasks.PhaseQueued:
		fmt.Fprintf(&set, `, not_before = %s, node = '', devices = '', error = %s`, arg(nanos(t.NotBefore)), arg(t.AttemptError))
	case t.To.Terminal():
		fmt.Fprintf(&set, `, finished_at = %s, error = %s`, at(), arg(t.Error))
		if t.To == tasks.PhaseSucceeded {
			fmt.Fprintf(&set, `, outputs = %s`, perRun(func(m *store.Transition) any { return bytesOrNil(m.Outputs) },
				func(a, b *store.Transition) bool { return bytes.Equal(a.Outputs, b.Outputs) }, s.d.blobType()))
		}
	}
	if abortReason != "" {
		fmt.Fprintf(&set, `, abort_reason = %s`, arg(abortReason))
	}
	if t.CountFailure {
		set.WriteString(`, failures = failures + 1`)
	}
	if t.Interrupted {
		set.WriteString(`, interruptions = interruptions + 1`)
	}

	var q strings.Builder
	q.WriteString(`UPDATE runs SET ` + set.String())
	// The runs are found by name; "phase || ''" keeps the planner off the
	// phase index, which for a group of more than a few names SQLite would
	// otherwise prefer, walking every queued run of the backlog.
	q.WriteString(` WHERE (phase || '') IN (`)
	for i, p := range from {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(arg(string(p)))
	}
	q.WriteByte(')')
	if t.Attempt != 0 {
		fmt.Fprintf(&q, ` AND attempt = %s`, arg(t.Attempt))
	}
	if t.Node != "" {
		fmt.Fprintf(&q, ` AND node = %s`, arg(t.Node))
	}
	if len(names) == 1 {
		q.WriteString(` AND name = ` + names[0])
	} else {
		q.WriteString(` AND name IN (` + strings.Join(names, ",") + `)`)
	}
	q.WriteString(` RETURNING ` + runCols)
	return q.String(), args
}

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

// insertArrays runs q with one array parameter per column of rows: text
// columns hold strings, bigint columns ints (Dialect.ArrayInsert).
func insertArrays(ctx context.Context, tx Tx, q string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	cols := make([]any, len(rows[0]))
	for c, v := range rows[0] {
		var strs []string
		var ints []int64
		switch v.(type) {
		case string:
			strs = make([]string, len(rows))
			cols[c] = strs
		case int, int64:
			ints = make([]int64, len(rows))
			cols[c] = ints
		}
		for i, r := range rows {
			switch x := r[c].(type) {
			case string:
				if strs == nil {
					return fmt.Errorf("row %d column %d: %T in an array insert of %T", i, c, x, v)
				}
				strs[i] = x
			case int:
				if ints == nil {
					return fmt.Errorf("row %d column %d: %T in an array insert of %T", i, c, x, v)
				}
				ints[i] = int64(x)
			case int64:
				if ints == nil {
					return fmt.Errorf("row %d column %d: %T in an array insert of %T", i, c, x, v)
				}
				ints[i] = x
			default:
				return fmt.Errorf("row %d column %d: %T in an array insert", i, c, x)
			}
		}
	}
	_, err := tx.Exec(ctx, q, cols...)
	return err
}

// insertRows inserts rows, each one row's values, with multi-row
// statements after prefix.
func (s *Store) insertRows(ctx context.Context, tx Tx, prefix string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	return s.valuesChunks(idx, len(rows[0]), prefix, "",
		func(args []any, i int) []any { return append(args, rows[i]...) },
		func(q string, args []any, _ []int) error {
			_, err := tx.Exec(ctx, q, args...)
			return err
		})
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

// RequestAbort implements store.Store.
func (s *Store) RequestAbort(ctx context.Context, name, reason string, at time.Time) (store.AbortResult, error) {
	reason = cleanText(reason)
	var res store.AbortResult
	err := s.withTx(ctx, func(tx Tx, notes *[]store.Notification) error {
		runs, err := s.queryRuns(ctx, tx, `SELECT `+runCols+` FROM runs WHERE name = $1`+s.d.ForUpdate, name)
		if err != nil {
			return err
		}
		if len(runs) == 0 {
			return store.ErrNotFound
		}
		run := runs[0]
		switch run.Phase {
		case tasks.PhaseQueued, tasks.PhaseWaitingForResources:
			msg := "aborted"
			if reason != "" {
				msg += ": " + reason
			}
			r, err := s.transition(ctx, tx, &store.Transition{
				Run: name, From: []tasks.Phase{run.Phase}, To: tasks.PhaseAborted, At: at, Error: msg,
			}, nonEmpty(reason, "aborted"))
			if err != nil {
				return err
			}
			res = store.AbortResult{Run: r.Run, Terminal: true, Event: r.Event}
			*notes = append(*notes, store.Notification{Kind: store.NotifyEvent, Run: name, Seq: r.Event.Seq, Phase: r.Event.Phase, Node: r.Run.Node, Attempt: r.Run.Attempt,
				Delivery: r.Delivery})
		case tasks.PhaseInitializing, tasks.PhaseRunning:
			if _, err := tx.Exec(ctx, `UPDATE runs SET abort_requested = 1, abort_reason = $1 WHERE name = $2`,
				nonEmpty(reason, "aborted"), name); err != nil {
				return err
			}
			run.AbortRequested = true
			run.AbortReason = nonEmpty(reason, "aborted")
			res = store.AbortResult{Run: run}
			*notes = append(*notes, store.Notification{Kind: store.NotifyAbort, Run: name, Node: run.Node})
		default:
			res = store.AbortResult{Run: run}
			return store.ErrAlreadyDone
		}
		return nil
	})
	return res, err
}

// GetRun implements store.Store.
func (s *Store) GetRun(ctx context.Context, name string) (*store.StoredRun, error) {
	runs, err := s.queryRuns(ctx, s.db, `SELECT `+runCols+` FROM runs WHERE name = $1`, name)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, store.ErrNotFound
	}
	run := runs[0]
	rows, err := s.db.Query(ctx, `SELECT number, node, devices, phase, error, interrupted, started_at, finished_at
		FROM attempts WHERE run = $1 ORDER BY number`, name)
	if err != nil {
		return nil, fmt.Errorf("read attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a tasks.Attempt
		var devices, phase string
		var interrupted, started, finished int64
		if err := rows.Scan(&a.Number, &a.Node, &devices, &phase, &a.Error, &interrupted, &started, &finished); err != nil {
			return nil, fmt.Errorf("read attempts: %w", err)
		}
		a.Interrupted = interrupted != 0
		a.Phase = tasks.Phase(phase)
		a.Devices = parseList(devices)
		a.StartedAt = timePtr(started)
		a.FinishedAt = timePtr(finished)
		run.Attempts = append(run.Attempts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read attempts: %w", err)
	}
	return run, nil
}

// ListRuns implements store.Store.
func (s *Store) ListRuns(ctx context.Context, f store.RunFilter) ([]*store.StoredRun, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Owner != "" {
		where = append(where, `owner = `+arg(f.Owner))
	}
	if len(f.Phases) > 0 {
		ps := make([]string, len(f.Phases))
		for i, p := range f.Phases {
			ps[i] = arg(string(p))
		}
		where = append(where, `phase IN (`+strings.Join(ps, ",")+`)`)
	}
	if f.Task != "" {
		parts := strings.Split(f.Task, "/")
		if len(parts) != 3 {
			return nil, fmt.Errorf("task filter %q is not project/domain/name", f.Task)
		}
		where = append(where, `project = `+arg(parts[0]), `domain = `+arg(parts[1]), `task = `+arg(parts[2]))
	}
	if f.BeforeSeq > 0 {
		where = append(where, `seq < `+arg(f.BeforeSeq))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT ` + runCols + ` FROM runs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY seq DESC LIMIT ` + arg(limit)
	return s.queryRuns(ctx, s.db, q, args...)
}

// ActiveRuns implements store.Store.
func (s *Store) ActiveRuns(ctx context.Context, node string) ([]*store.StoredRun, error) {
	q := `SELECT ` + runCols + ` FROM runs WHERE phase IN ($1, $2, $3, $4)`
	args := []any{string(activePhases[0]), string(activePhases[1]), string(activePhases[2]), string(activePhases[3])}
	if node != "" {
		q += ` AND node = $5`
		args = append(args, node)
	}
	return s.queryRuns(ctx, s.db, q+` ORDER BY seq`, args...)
}

// QueuedRunsAfter implements store.Store.
func (s *Store) QueuedRunsAfter(ctx context.Context, afterSeq int64, limit int) ([]*store.StoredRun, error) {
	if limit <= 0 {
		limit = 1000
	}
	return s.queryRuns(ctx, s.db, `SELECT `+runCols+` FROM runs WHERE phase = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		string(tasks.PhaseQueued), afterSeq, limit)
}

// Events implements store.Store. The first event (queued, seq 1) is not
// stored: it is the run's creation, and leaving it out keeps submits to one
// row each.
func (s *Store) Events(ctx context.Context, name string, afterSeq int64) ([]tasks.Event, error) {
	var out []tasks.Event
	if afterSeq < 1 {
		rows, err := s.db.Query(ctx, `SELECT created_at FROM runs WHERE name = $1`, name)
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		var created int64
		found := rows.Next()
		if found {
			err = rows.Scan(&created)
		}
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		if !found {
			return nil, nil
		}
		out = append(out, tasks.Event{Seq: 1, Run: name, Phase: tasks.PhaseQueued, At: fromNanos(created)})
	}
	rows, err := s.db.Query(ctx, `SELECT seq, phase, at, error FROM events WHERE run = $1 AND seq > $2 ORDER BY seq`, name, afterSeq)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		ev := tasks.Event{Run: name}
		var phase string
		var at int64
		if err := rows.Scan(&ev.Seq, &phase, &at, &ev.Error); err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		ev.Phase = tasks.Phase(phase)
		ev.At = fromNanos(at)
		out = append(out, ev)
	}
	return out, rows.Err()
}

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
	rows, err := tx.Query(ctx, `INSERT INTO deliveries (id, run, url, event, payload, state, next_attempt_at, created_at, seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (SELECT COALESCE(MAX(seq), 0) + 1 FROM deliveries WHERE run = $2))
		RETURNING seq`,
		d.ID, d.Run, d.URL, d.Event, bytesOrNil(d.Payload), store.DeliveryPending, nanos(d.CreatedAt), nanos(d.CreatedAt))
	if err != nil {
		return store.Delivery{}, fmt.Errorf("insert delivery: %w", err)
	}
	defer rows.Close()
	out := store.Delivery{NewDelivery: d, State: store.DeliveryPending, NextAttemptAt: d.CreatedAt}
	if rows.Next() {
		err = rows.Scan(&out.Seq)
	}
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return store.Delivery{}, fmt.Errorf("insert delivery: %w", err)
	}
	return out, nil
}

const deliveryCols = `id, run, url, event, payload, state, next_attempt_at, created_at, seq`

func scanDeliveries(rows Rows) ([]store.Delivery, error) {
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		var d store.Delivery
		var payload []byte
		var next, created int64
		if err := rows.Scan(&d.ID, &d.Run, &d.URL, &d.Event, &payload, &d.State, &next, &created, &d.Seq); err != nil {
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
		// The state is a literal, not a parameter: only then may the
		// planner use the partial index of pending deliveries instead of
		// scanning every delivery ever made. A delivery waits while an
		// earlier one of its run is pending (claimed or not), so that a
		// run's callbacks arrive in order; deliveries_run finds those.
		rows, err := tx.Query(ctx, `UPDATE deliveries SET next_attempt_at = $1 WHERE id IN (
			SELECT d.id FROM deliveries d WHERE d.state = '`+store.DeliveryPending+`' AND d.next_attempt_at <= $2
			AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.run = d.run
				AND p.state = '`+store.DeliveryPending+`' AND (p.seq, p.id) < (d.seq, d.id))
			ORDER BY d.next_attempt_at LIMIT $3`+s.d.SkipLocked+`) RETURNING `+deliveryCols,
			nanos(now.Add(store.ClaimTTL)), nanos(now), limit)
		if err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		out, err = scanDeliveries(rows)
		return err
	})
	return out, err
}

// RecordDeliveryAttempt implements store.Store.
func (s *Store) RecordDeliveryAttempt(ctx context.Context, id string, a store.DeliveryAttempt) error {
	state, next := store.DeliveryPending, nanos(a.NextAttemptAt)
	if a.Done {
		state = store.DeliveryFailed
		if a.StatusCode >= 200 && a.StatusCode < 300 {
			state = store.DeliveryDelivered
		}
	}
	return s.withTx(ctx, func(tx Tx, _ *[]store.Notification) error {
		// Only a pending delivery: a worker whose claim expired must not
		// reopen one that another worker has settled meanwhile.
		n, err := tx.Exec(ctx, `UPDATE deliveries SET state = $1, next_attempt_at = $2, attempts = attempts + 1
			WHERE id = $3 AND state = $4`, state, next, id, store.DeliveryPending)
		if err != nil {
			return fmt.Errorf("update delivery: %w", err)
		}
		if n == 0 {
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
		}
		_, err = tx.Exec(ctx, `INSERT INTO delivery_attempts (delivery, number, at, status, error)
			VALUES ($1, (SELECT attempts FROM deliveries WHERE id = $1), $2, $3, $4)`, id, nanos(a.At), a.StatusCode, a.Error)
		if err != nil {
			return fmt.Errorf("insert delivery attempt: %w", err)
		}
		return nil
	})
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

// queryRuns reads rows of runCols.
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

func (s *Store) queryRuns(ctx context.Context, q Querier, sql string, args ...any) ([]*store.StoredRun, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	defer rows.Close()
	var out []*store.StoredRun
	for rows.Next() {
		var r store.StoredRun
		var caller, phase, devices, events string
		var inputs, outputs []byte
		var abortReq, purged int64
		var notBefore, created, started, finished int64
		if err := rows.Scan(&r.Seq, &r.Name, &r.Project, &r.Domain, &r.Task, &r.Version, &r.Owner, &caller,
			&phase, &r.Priority, &inputs, &outputs, &r.Error, &r.Attempt, &r.Failures, &r.Node, &devices,
			&r.Webhook, &events, &r.AbortReason, &abortReq, &r.WaitReason, &notBefore, &r.EventSeq,
			&created, &started, &finished, &purged, &r.Interruptions); err != nil {
			return nil, fmt.Errorf("read runs: %w", err)
		}
		r.Phase = tasks.Phase(phase)
		if caller != "" {
			if err := json.Unmarshal([]byte(caller), &r.Caller); err != nil {
				return nil, fmt.Errorf("run %s: caller: %w", r.Name, err)
			}
		}
		if len(inputs) > 0 {
			r.Inputs = json.RawMessage(inputs)
		}
		if len(outputs) > 0 {
			r.Outputs = json.RawMessage(outputs)
		}
		r.Devices = parseList(devices)
		r.WebhookEvents = parseList(events)
		r.AbortRequested = abortReq != 0
		r.Purged = purged != 0
		r.NotBefore = fromNanos(notBefore)
		r.CreatedAt = fromNanos(created)
		r.StartedAt = timePtr(started)
		r.FinishedAt = timePtr(finished)
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	return out, nil
}

// cleanText makes s storable as text in both databases: invalid UTF-8 and
// NUL bytes, which PostgreSQL refuses (and which would fail a whole batch
// with them), become U+FFFD. Task errors and log lines can hold anything a
// subprocess printed.
func cleanText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// cleanTransitions returns ts with the text of its changes cleaned
// (cleanText), copied only when some needs it.
func cleanTransitions(ts []store.Transition) []store.Transition {
	out, copied := ts, false
	for i := range ts {
		t := &ts[i]
		e, ae, w := cleanText(t.Error), cleanText(t.AttemptError), cleanText(t.WaitReason)
		if e == t.Error && ae == t.AttemptError && w == t.WaitReason {
			continue
		}
		if !copied {
			out, copied = slices.Clone(ts), true
		}
		out[i].Error, out[i].AttemptError, out[i].WaitReason = e, ae, w
	}
	return out
}

// values writes one "($n, $n+1, …)" tuple of cols parameters after the n
// already used.
func values(sb *strings.Builder, n, cols int) {
	sb.WriteByte('(')
	for c := range cols {
		if c > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('$')
		sb.WriteString(strconv.Itoa(n + c + 1))
	}
	sb.WriteByte(')')
}

// valuesChunks builds the multi-row statements "prefix (…),(…) suffix" that
// insert the rows idx, cols values each (row appends a row's values to
// args), at most MaxParams parameters per statement, and calls exec with
// each statement, its arguments and the rows it holds.
func (s *Store) valuesChunks(idx []int, cols int, prefix, suffix string,
	row func(args []any, i int) []any, exec func(q string, args []any, chunk []int) error) error {
	for _, chunk := range chunks(idx, s.d.MaxParams/cols) {
		var sb strings.Builder
		sb.WriteString(prefix)
		args := make([]any, 0, len(chunk)*cols)
		for j, i := range chunk {
			if j > 0 {
				sb.WriteByte(',')
			}
			values(&sb, len(args), cols)
			args = row(args, i)
		}
		sb.WriteString(suffix)
		if err := exec(sb.String(), args, chunk); err != nil {
			return err
		}
	}
	return nil
}

// Multi-row statements: a batch of up to exactRows rows is one statement
// of exactly that many rows (one round trip on PostgreSQL); a larger batch
// is split greedily into chunkSizes, with the remainder as one exact
// chunk. That bounds the distinct statement texts per kind to
// exactRows+len(chunkSizes), within the drivers' prepared-statement caches.
const exactRows = 32

var chunkSizes = []int{256, 128, 64, 32}

// chunks splits idx into pieces as above, none above limit rows.
func chunks(idx []int, limit int) [][]int {
	limit = max(limit, 1)
	var out [][]int
	for _, size := range chunkSizes {
		size = min(size, limit)
		for len(idx) > exactRows && len(idx) >= size {
			out = append(out, idx[:size])
			idx = idx[size:]
		}
	}
	for len(idx) > 0 {
		n := min(len(idx), limit)
		out = append(out, idx[:n])
		idx = idx[n:]
	}
	return out
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func timePtr(n int64) *time.Time {
	if n == 0 {
		return nil
	}
	t := fromNanos(n)
	return &t
}

func bytesOrNil(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonList(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return jsonText(l)
}

func parseList(s string) []string {
	if s == "" {
		return nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil
	}
	return l
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix + 26 characters of lowercase base32 over 128 random
// bits: unguessable and URL-safe.
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + idEncoding.EncodeToString(b[:])
}
