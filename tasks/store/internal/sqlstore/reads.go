package sqlstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// runCols are the columns queryRuns reads, in order.
const runCols = `seq, name, project, domain, task, version, owner, caller, phase, priority,
	inputs, outputs, error, attempt, failures, node, devices, webhook, webhook_events,
	abort_reason, abort_requested, wait_reason, not_before, event_seq, created_at,
	started_at, finished_at, purged, interruptions, progress, trace_parent`

var activePhases = []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources, tasks.PhaseInitializing, tasks.PhaseRunning}

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
	w, err := s.CreatedWindow(ctx, f)
	if err != nil || w.Empty() {
		return nil, err
	}
	q, args, err := ListRunsQuery(s, f, w)
	if err != nil {
		return nil, err
	}
	if s.d.PlanEach != nil && (w.From > 0 || w.To > 0) {
		args = append([]any{s.d.PlanEach}, args...)
	}
	runs, err := s.queryRuns(ctx, s.db, q, args...)
	// Dialect.SeqMerge reads the runs by seq in no given order.
	slices.SortFunc(runs, func(a, b *store.StoredRun) int { return cmp.Compare(b.Seq, a.Seq) })
	return runs, err
}

// SeqWindow bounds the seqs ListRunsQuery reads: From <= seq < To, zero
// being no bound.
type SeqWindow struct{ From, To int64 }

// Empty tells whether no seq is in w.
func (w SeqWindow) Empty() bool { return w.From > 0 && w.To > 0 && w.From >= w.To }

// CreatedWindow is the seqs that hold every run f's creation-time window
// may keep (no bound without a window): ListRuns reads only these, and
// filters them by creation time, so a window is an index range like the
// other filters. It is a binary search of the seq order by the primary
// key (SeqCreatedFromSQL), one statement per edge, not an index on
// creation time, which every submit would pay for.
//
// Creation times follow seq order up to store.CreatedSkew (a run with a
// higher seq was created no more than that before a lower one), so the
// search looks for the edge a skew outside the window: any run below a
// seq p whose run was created before after-skew was created before
// after, and any run from a seq q whose run was created at or after
// before+skew was created at or after before. Runs inside the skew of an
// edge are read and dropped by the creation-time filter.
func (s *Store) CreatedWindow(ctx context.Context, f store.RunFilter) (SeqWindow, error) {
	var w SeqWindow
	var err error
	if !f.CreatedAfter.IsZero() {
		if w.From, err = s.seqCreatedFrom(ctx, f.CreatedAfter.Add(-store.CreatedSkew)); err != nil {
			return w, err
		}
	}
	if !f.CreatedBefore.IsZero() {
		if w.To, err = s.seqCreatedFrom(ctx, f.CreatedBefore.Add(store.CreatedSkew)); err != nil {
			return w, err
		}
		if w.To == 0 {
			w.To = 1 // no runs: an empty window, not none
		}
	}
	return w, nil
}

// SeqCreatedFromSQL (exported for the plan tests) is a binary search of the seq order for the creation
// time $1, in one statement on both databases (each step two or three
// lookups of the primary key). Its state (lo, hi) keeps a run lo created
// before $1 (or lo below every run) and the first run from hi on created
// at or after $1 (or none there); each step probes the first run from
// the middle and moves lo up to it (it may jump over a gap) or hi down to
// the middle, until hi is next to lo. The answer is the last hi: 0 when
// there are no runs.
const SeqCreatedFromSQL = `WITH RECURSIVE b(lo, hi) AS (
	SELECT (SELECT min(seq) FROM runs) - 1, (SELECT max(seq) FROM runs) + 1
	UNION ALL
	SELECT
		CASE WHEN (SELECT created_at FROM runs WHERE seq >= (b.lo + b.hi) / 2 ORDER BY seq LIMIT 1) < $1
			THEN (SELECT seq FROM runs WHERE seq >= (b.lo + b.hi) / 2 ORDER BY seq LIMIT 1) ELSE b.lo END,
		CASE WHEN (SELECT created_at FROM runs WHERE seq >= (b.lo + b.hi) / 2 ORDER BY seq LIMIT 1) < $1
			THEN b.hi ELSE (b.lo + b.hi) / 2 END
	FROM b WHERE b.hi - b.lo > 1)
SELECT COALESCE(min(hi), 0) FROM b`

// seqCreatedFrom returns a seq p with a run created before t just below
// it (or none below) and, from p on, a first run created at or after t
// (or none): SeqCreatedFromSQL.
func (s *Store) seqCreatedFrom(ctx context.Context, t time.Time) (int64, error) {
	rows, err := s.db.Query(ctx, SeqCreatedFromSQL, nanos(t))
	if err != nil {
		return 0, fmt.Errorf("find the seq of a creation time: %w", err)
	}
	defer rows.Close()
	var seq int64
	if rows.Next() {
		err = rows.Scan(&seq)
	}
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return 0, fmt.Errorf("find the seq of a creation time: %w", err)
	}
	return seq, nil
}

// ListRunsQuery is the statement ListRuns of s runs for f within the seqs
// w (CreatedWindow), and its arguments (a function, not a method: the
// stores embed Store, and this is for their plan tests, not their API).
//
// Whatever f holds, the statement reads index ranges that are already in
// seq order (migration 0008), so a page costs the same with a million runs
// stored as with a hundred: never a scan, never a sort of every matching
// run. An owner or a task with phases reads one range of runs_owner_phase,
// runs_task_phase or runs_owner_task_phase per phase, and merges them by
// seq (SQLite merges the ordered arms of a UNION ALL itself; PostgreSQL
// with a Merge Append, Dialect.SeqMerge); without phases, every phase is
// asked for. No owner and no task reads runs_phase the same way, or the
// primary key. The seq bound is always there, so even the first page
// searches a range.
//
// A creation-time window reads the seq range w and drops the runs
// created outside it as it goes (created_at is in no index): those are
// only the runs within store.CreatedSkew of its edges.
func ListRunsQuery(s *Store, f store.RunFilter, w SeqWindow) (string, []any, error) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var where []string
	if f.Owner != "" {
		where = append(where, `owner = `+arg(f.Owner))
	}
	if f.Task != "" {
		parts := strings.Split(f.Task, "/")
		if len(parts) != 3 {
			return "", nil, fmt.Errorf("task filter %q is not project/domain/name", f.Task)
		}
		where = append(where, `project = `+arg(parts[0]), `domain = `+arg(parts[1]), `task = `+arg(parts[2]))
	}
	before := f.BeforeSeq
	if before <= 0 {
		before = math.MaxInt64
	}
	if w.To > 0 {
		before = min(before, w.To)
	}
	where = append(where, `seq < `+arg(before))
	if w.From > 0 {
		where = append(where, `seq >= `+arg(w.From))
	}
	if !f.CreatedAfter.IsZero() {
		where = append(where, `created_at >= `+arg(nanos(f.CreatedAfter)))
	}
	if !f.CreatedBefore.IsZero() {
		where = append(where, `created_at < `+arg(nanos(f.CreatedBefore)))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limitArg := arg(limit)
	phases := slices.Compact(slices.Sorted(slices.Values(f.Phases)))
	if len(phases) == len(tasks.Phases) {
		phases = nil // every phase is no filter (a run is always in one)
	}
	if len(phases) == 0 && (f.Owner != "" || f.Task != "") {
		phases = tasks.Phases
	}
	cols := runCols
	if s.d.SeqMerge {
		cols = `seq`
	}
	from := ` FROM runs`
	if s.d.IndexedBy {
		from += ` ` + listIndex(f, phases)
	}
	arm := func(cond []string) string {
		return `SELECT ` + cols + from + ` WHERE ` + strings.Join(cond, ` AND `)
	}
	order := ` ORDER BY seq DESC LIMIT ` + limitArg
	var q string
	switch len(phases) {
	case 0:
		q = arm(where) + order
	case 1:
		q = arm(append(where, `phase = `+arg(string(phases[0])))) + order
	default:
		arms := make([]string, len(phases))
		for i, p := range phases {
			arms[i] = arm(append(slices.Clip(where), `phase = `+arg(string(p))))
			if s.d.SeqMerge {
				arms[i] = `(` + arms[i] + order + `)`
			}
		}
		q = strings.Join(arms, ` UNION ALL `) + order
	}
	if s.d.SeqMerge {
		q = `SELECT ` + runCols + ` FROM runs WHERE seq = ANY (ARRAY(` + q + `))`
	}
	return q, args, nil
}

// listIndex is SQLite's clause naming the index that serves f with
// phases (migration 0008): Dialect.IndexedBy.
func listIndex(f store.RunFilter, phases []tasks.Phase) string {
	switch {
	case f.Owner != "" && f.Task != "":
		return `INDEXED BY runs_owner_task_phase`
	case f.Owner != "":
		return `INDEXED BY runs_owner_phase`
	case f.Task != "":
		return `INDEXED BY runs_task_phase`
	case len(phases) > 0:
		return `INDEXED BY runs_phase`
	}
	return `NOT INDEXED`
}

// NodeRunsSQL (ActiveRuns of a node) and BoundRunsSQL read the runs
// bound to the node $1. Only initializing and running runs are bound to a
// node (a requeue clears it). The phases are spelled out, not parameters,
// so that both databases see the partial index runs_bound (migration
// 0012) applies: its walk is the node's runs, not every active run.
// BoundRunsSQL has no ORDER BY, so that no plan walks the primary key for
// its order instead. Exported for the plan tests.
const (
	NodeRunsSQL = `SELECT ` + runCols + ` FROM runs
		WHERE node = $1 AND phase IN ('initializing', 'running') ORDER BY seq`
	BoundRunsSQL = `SELECT name, attempt, phase, abort_requested, abort_reason FROM runs
		WHERE node = $1 AND phase IN ('initializing', 'running')`
)

// ActiveRuns implements store.Store.
func (s *Store) ActiveRuns(ctx context.Context, node string) ([]*store.StoredRun, error) {
	if node != "" {
		return s.queryRuns(ctx, s.db, NodeRunsSQL, node)
	}
	return s.queryRuns(ctx, s.db, `SELECT `+runCols+` FROM runs WHERE phase IN ($1, $2, $3, $4) ORDER BY seq`,
		string(activePhases[0]), string(activePhases[1]), string(activePhases[2]), string(activePhases[3]))
}

// BoundRuns implements store.Store.
func (s *Store) BoundRuns(ctx context.Context, node string) ([]store.BoundRun, error) {
	rows, err := s.db.Query(ctx, BoundRunsSQL, node)
	if err != nil {
		return nil, fmt.Errorf("read runs bound to %s: %w", node, err)
	}
	defer rows.Close()
	var out []store.BoundRun
	for rows.Next() {
		var r store.BoundRun
		var phase string
		var abort int64
		if err := rows.Scan(&r.Name, &r.Attempt, &phase, &abort, &r.AbortReason); err != nil {
			return nil, fmt.Errorf("read runs bound to %s: %w", node, err)
		}
		r.Phase, r.AbortRequested = tasks.Phase(phase), abort != 0
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read runs bound to %s: %w", node, err)
	}
	return out, nil
}

// ActivePlacements implements store.Store.
func (s *Store) ActivePlacements(ctx context.Context) ([]store.Placement, error) {
	phases := []any{string(activePhases[0]), string(activePhases[1]), string(activePhases[2]), string(activePhases[3])}
	// The count (from the index alone) sizes the slice: growing it row by
	// row copied a third of the read's time with 100k waiting runs. A
	// count that changes before the read is only a worse guess.
	var n int64
	rows, err := s.db.Query(ctx, `SELECT COUNT(*) FROM runs WHERE phase IN ($1, $2, $3, $4)`, phases...)
	if err != nil {
		return nil, fmt.Errorf("count placements: %w", err)
	}
	if rows.Next() {
		err = rows.Scan(&n)
	}
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("count placements: %w", err)
	}
	rows, err = s.db.Query(ctx, `SELECT seq, name, project, domain, task, phase, priority, attempt, node, devices, not_before
		FROM runs WHERE phase IN ($1, $2, $3, $4)`, phases...)
	if err != nil {
		return nil, fmt.Errorf("read placements: %w", err)
	}
	defer rows.Close()
	out := make([]store.Placement, 0, n)
	for rows.Next() {
		var p store.Placement
		var phase, devices string
		var notBefore int64
		if err := rows.Scan(&p.Seq, &p.Name, &p.Project, &p.Domain, &p.Task, &phase, &p.Priority,
			&p.Attempt, &p.Node, &devices, &notBefore); err != nil {
			return nil, fmt.Errorf("read placements: %w", err)
		}
		p.Phase = tasks.Phase(phase)
		p.Devices = parseList(devices)
		p.NotBefore = fromNanos(notBefore)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read placements: %w", err)
	}
	// Sorted here rather than by the query: the rows come per phase from
	// the phase index, and SQLite would sort them through a temporary
	// B-tree, most of the read's time with 100k waiting runs.
	slices.SortFunc(out, func(a, b store.Placement) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
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

// queryRuns reads rows of runCols.
func (s *Store) queryRuns(ctx context.Context, q Querier, sql string, args ...any) ([]*store.StoredRun, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	defer rows.Close()
	var out []*store.StoredRun
	// The runs of a batch mostly share their caller: each distinct one is
	// decoded once (its groups copied per run), not once per row.
	var lastCaller string
	var lastDecoded store.Caller
	for rows.Next() {
		var r store.StoredRun
		var caller, phase, devices, events, progress string
		var inputs, outputs []byte
		var abortReq, purged int64
		var notBefore, created, started, finished int64
		if err := rows.Scan(&r.Seq, &r.Name, &r.Project, &r.Domain, &r.Task, &r.Version, &r.Owner, &caller,
			&phase, &r.Priority, &inputs, &outputs, &r.Error, &r.Attempt, &r.Failures, &r.Node, &devices,
			&r.Webhook, &events, &r.AbortReason, &abortReq, &r.WaitReason, &notBefore, &r.EventSeq,
			&created, &started, &finished, &purged, &r.Interruptions, &progress, &r.TraceParent); err != nil {
			return nil, fmt.Errorf("read runs: %w", err)
		}
		r.Phase = tasks.Phase(phase)
		if caller != "" {
			if caller != lastCaller {
				lastDecoded = store.Caller{}
				if err := json.Unmarshal([]byte(caller), &lastDecoded); err != nil {
					return nil, fmt.Errorf("run %s: caller: %w", r.Name, err)
				}
				lastCaller = caller
			}
			r.Caller = lastDecoded
			r.Caller.Groups = slices.Clone(lastDecoded.Groups)
		}
		if len(inputs) > 0 {
			r.Inputs = json.RawMessage(inputs)
		}
		if len(outputs) > 0 {
			r.Outputs = json.RawMessage(outputs)
		}
		if progress != "" {
			r.Progress = new(tasks.RunProgress)
			if err := json.Unmarshal([]byte(progress), r.Progress); err != nil {
				return nil, fmt.Errorf("run %s: progress: %w", r.Name, err)
			}
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

// CountActiveRuns implements store.Store.
func (s *Store) CountActiveRuns(ctx context.Context) (map[tasks.Phase]int, error) {
	rows, err := s.db.Query(ctx, `SELECT phase, COUNT(*) FROM runs WHERE phase IN ($1, $2, $3, $4) GROUP BY phase`,
		string(activePhases[0]), string(activePhases[1]), string(activePhases[2]), string(activePhases[3]))
	if err != nil {
		return nil, fmt.Errorf("count active runs: %w", err)
	}
	defer rows.Close()
	out := make(map[tasks.Phase]int, len(activePhases))
	for rows.Next() {
		var phase string
		var n int
		if err := rows.Scan(&phase, &n); err != nil {
			return nil, fmt.Errorf("count active runs: %w", err)
		}
		out[tasks.Phase(phase)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count active runs: %w", err)
	}
	return out, nil
}
