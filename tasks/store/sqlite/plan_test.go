package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/internal/sqlstore"
	"github.com/taskgate/taskgate/tasks/store/storetest"
)

// TestTransitionsFindRunsByName checks the query plans of the UPDATEs
// batches of transitions ran: each must find its runs through the name
// index, and its attempts through their primary key. Without statistics SQLite prefers the phase index for a group of
// more than a few names, which walks every queued run of a backlog.
func TestTransitionsFindRunsByName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTempStore(t)

	var runs []store.NewRun
	for i := range 200 {
		runs = append(runs, store.NewRun{Name: fmt.Sprintf("r%04d", i), Project: "p", Domain: "d", Task: "t",
			Caller: store.Caller{Subject: "a"}, CreatedAt: time.Now()})
	}
	_, err := s.CreateRuns(ctx, runs)
	require.NoError(t, err)
	at := time.Now() // one round: the changes differ only by run
	var ts []store.Transition
	for i := range 40 {
		ts = append(ts, store.Transition{Run: runs[i].Name, From: []tasks.Phase{tasks.PhaseQueued},
			To: tasks.PhaseWaitingForResources, At: at, WaitReason: "busy"})
	}
	for i := 40; i < 80; i++ {
		ts = append(ts, store.Transition{Run: runs[i].Name, From: []tasks.Phase{tasks.PhaseQueued},
			To: tasks.PhaseRunning, Start: true, At: at, Bind: &store.Binding{Node: "n"}})
	}
	res, err := s.Transition(ctx, ts)
	require.NoError(t, err)
	for _, r := range res {
		require.True(t, r.Applied)
	}
	// The started runs finish, each at its own time with its own outputs:
	// grouped UPDATEs with per-run values, of runs and of their attempts.
	ts = ts[:0]
	for i := 40; i < 80; i++ {
		ts = append(ts, store.Transition{Run: runs[i].Name, From: []tasks.Phase{tasks.PhaseRunning}, Attempt: 1,
			To: tasks.PhaseSucceeded, At: at.Add(time.Duration(i) * time.Microsecond), Outputs: []byte(fmt.Sprintf(`{"i":%d}`, i))})
	}
	res, err = s.Transition(ctx, ts)
	require.NoError(t, err)
	for _, r := range res {
		require.True(t, r.Applied)
	}

	updates := prepared(s, func(q string) bool { return strings.HasPrefix(q, "UPDATE runs SET") })
	attempts := prepared(s, func(q string) bool { return strings.HasPrefix(q, "UPDATE attempts SET") })
	require.NotEmpty(t, updates)
	require.NotEmpty(t, attempts)
	grouped := false
	for _, p := range updates {
		plan := queryPlan(t, s, p)
		require.Contains(t, plan, "(name=?)", "plan of %.80s…: %s", p.query, plan)
		require.NotContains(t, plan, "runs_phase", "plan of %.80s…: %s", p.query, plan)
		grouped = grouped || strings.Contains(p.query, "CASE name WHEN")
	}
	require.True(t, grouped, "no finish was grouped")
	for _, p := range attempts {
		plan := queryPlan(t, s, p)
		require.Contains(t, plan, "PRIMARY KEY (run=? AND number=?)", "plan of %.80s…: %s", p.query, plan)
		require.NotContains(t, plan, "SCAN attempts", "plan of %.80s…: %s", p.query, plan)
	}
}

// TestClaimUsesPendingIndex checks that claiming due deliveries reads the
// partial index of pending deliveries, not every delivery ever made.
func TestClaimUsesPendingIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTempStore(t)
	_, err := s.EnqueueDelivery(ctx, store.NewDelivery{Run: "r1", URL: "https://example.com/hook", Event: store.WebhookCompleted, CreatedAt: time.Now()})
	require.NoError(t, err)
	got, err := s.ClaimDueDeliveries(ctx, time.Now().Add(time.Second), 10)
	require.NoError(t, err)
	require.Len(t, got, 1)

	claims := prepared(s, func(q string) bool { return strings.HasPrefix(q, "UPDATE deliveries SET next_attempt_at") })
	require.NotEmpty(t, claims)
	plan := queryPlan(t, s, claims[len(claims)-1])
	t.Logf("claim plan: %s", plan)
	require.Contains(t, plan, "deliveries_due", "plan: %s", plan)
	require.NotContains(t, plan, "SCAN deliveries", "plan: %s", plan)
	require.NotContains(t, plan, "SCAN p", "plan: %s", plan)
	// The earlier pending deliveries of a run, which hold a claim back,
	// are found through the run's index.
	require.Contains(t, plan, "USING INDEX deliveries_run (run=?", "plan: %s", plan)
}

// TestNodeRunsUseBoundIndex checks that reading a node's runs (its
// agent's rescan every few seconds) reads the partial index of bound runs,
// not every active run: with a million queued runs the walk took longer
// than the rescan's period (issue 19).
func TestNodeRunsUseBoundIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTempStore(t)
	_, err := s.ActiveRuns(ctx, "n1")
	require.NoError(t, err)
	_, err = s.BoundRuns(ctx, "n1")
	require.NoError(t, err)

	reads := prepared(s, func(q string) bool { return strings.Contains(q, "WHERE node = ") })
	require.Len(t, reads, 2) // ActiveRuns's and BoundRuns's
	for _, read := range reads {
		plan := queryPlan(t, s, read)
		require.Contains(t, plan, "runs_bound (node=?)", "plan: %s", plan)
		require.NotContains(t, plan, "runs_phase", "plan: %s", plan)
	}

	// And a scheduler's rebuild reads the active runs by phase.
	_, err = s.ActivePlacements(ctx)
	require.NoError(t, err)
	reads = prepared(s, func(q string) bool {
		return strings.HasPrefix(q, "SELECT seq, name, project, domain, task, phase, priority")
	})
	require.Len(t, reads, 1)
	plan := queryPlan(t, s, reads[0])
	t.Logf("placements plan: %s", plan)
	require.Contains(t, plan, "runs_phase (phase=?)", "plan: %s", plan)
	require.NotContains(t, plan, "SCAN runs", "plan: %s", plan)

	// GET /queue and the metrics count by phase from the index alone.
	_, err = s.CountActiveRuns(ctx)
	require.NoError(t, err)
	reads = prepared(s, func(q string) bool { return strings.HasPrefix(q, "SELECT phase, COUNT(*)") })
	require.Len(t, reads, 1)
	plan = queryPlan(t, s, reads[0])
	require.Contains(t, plan, "COVERING INDEX runs_phase (phase=?)", "plan: %s", plan)
}

// prepared is the statements the store has prepared whose query matches.
func prepared(s *Store, match func(query string) bool) []*positional {
	s.db.pos.mu.RLock()
	defer s.db.pos.mu.RUnlock()
	var out []*positional
	for _, p := range s.db.pos.m {
		if match(p.query) {
			out = append(out, p)
		}
	}
	return out
}

// openTempStore opens a store in t's temporary folder, closed when t ends.
func openTempStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "plan.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// queryPlan is SQLite's EXPLAIN QUERY PLAN of p (with NULL arguments,
// which do not change the plan), its details joined by "; ".
func queryPlan(t *testing.T, s *Store, p *positional) string {
	t.Helper()
	return queryPlanArgs(t, s, p.query, make([]any, len(p.order)))
}

// TestDeleteRunsFindsOldRunsByIndex: finding the runs to delete reads the
// index of end times, not every run, and deleting them finds each table's
// rows by run.
func TestDeleteRunsFindsOldRunsByIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTempStore(t)
	_, err := s.CreateRuns(ctx, []store.NewRun{{Name: "r1", Project: "p", Domain: "d", Task: "t", Caller: store.Caller{Subject: "a"}, CreatedAt: time.Now()}})
	require.NoError(t, err)
	_, err = s.RequestAbort(ctx, "r1", "", time.Now()) // queued: ends at once
	require.NoError(t, err)
	n, err := s.DeleteRuns(ctx, time.Now().Add(time.Second), 10)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	s.db.pos.mu.RLock()
	var stmts []*positional
	for _, p := range s.db.pos.m {
		if strings.HasPrefix(p.query, "SELECT name FROM runs WHERE finished_at") || strings.HasPrefix(p.query, "DELETE FROM") {
			stmts = append(stmts, p)
		}
	}
	s.db.pos.mu.RUnlock()
	require.Len(t, stmts, 8, "the search and seven deletes")
	for _, p := range stmts {
		plan := queryPlan(t, s, p)
		require.NotRegexp(t, `SCAN (runs|events|attempts|logs|deliveries|idempotency_keys|delivery_attempts)\b`, plan, "plan of %.80s…: %s", p.query, plan)
	}
}

// TestListRunsPlans checks the plan of every filter combination GET /runs
// can ask for (storetest.ListFilters): each reads one index range per
// phase, constrained by every filtered column and by seq, in seq order;
// never a scan of runs, never a sort. Twenty thousand runs are enough for
// plans; they are checked as a fresh store has them (no statistics) and
// after ANALYZE (statistics of skewed data, which could make SQLite prefer
// walking seq backwards and filtering).
func TestListRunsPlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTempStore(t)
	const n = 20000
	_, err := s.db.w.ExecContext(ctx, storetest.BulkRunsSQL(1, n))
	require.NoError(t, err)
	check := func(t *testing.T) {
		for _, lf := range storetest.ListFilters(n) {
			w, err := s.CreatedWindow(ctx, lf.Filter)
			require.NoError(t, err)
			q, args, err := sqlstore.ListRunsQuery(s.Store, lf.Filter, w)
			require.NoError(t, err)
			p, err := s.db.pos.get(q)
			require.NoError(t, err)
			args, err = p.args(args)
			require.NoError(t, err)
			plan := queryPlanArgs(t, s, p.query, args)
			require.NotContains(t, plan, "SCAN runs", "%s: %s", lf.Name, plan)
			require.NotContains(t, plan, "TEMP B-TREE", "%s: %s", lf.Name, plan)
			want := "USING INTEGER PRIMARY KEY (rowid<?)"
			if len(lf.Columns) > 0 {
				want = "(" + strings.Join(lf.Columns, "=? AND ") + "=? AND seq<?)"
			}
			if !lf.Filter.CreatedAfter.IsZero() {
				// A window is a range of seqs, bounded at both ends.
				want = strings.Replace(strings.Replace(want, "rowid<?", "rowid>? AND rowid<?", 1), "seq<?", "seq>? AND seq<?", 1)
			}
			require.Equal(t, lf.Arms, strings.Count(plan, "SEARCH runs"), "%s: %s", lf.Name, plan)
			require.Equal(t, lf.Arms, strings.Count(plan, want), "%s: want %s: %s", lf.Name, want, plan)
		}
	}
	t.Run("fresh", check)
	_, err = s.db.w.ExecContext(ctx, "ANALYZE")
	require.NoError(t, err)
	t.Run("analyzed", check)
}

// TestCreatedWindowPlan checks that the binary search that turns a
// creation time into a seq (CreatedWindow) searches the primary key at
// each step, and finds the edges of the window: the seqs a skew outside
// it, each next to a run on the other side of its time.
func TestCreatedWindowPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTempStore(t)
	f := store.RunFilter{CreatedAfter: storetest.BulkCreated(5000), CreatedBefore: storetest.BulkCreated(15000)}
	runs, err := s.ListRuns(ctx, f)
	require.NoError(t, err)
	require.Empty(t, runs, "no runs")
	const n = 20000
	_, err = s.db.w.ExecContext(ctx, storetest.BulkRunsSQL(1, n))
	require.NoError(t, err)
	w, err := s.CreatedWindow(ctx, f)
	require.NoError(t, err)
	skew := store.CreatedSkew.Milliseconds() // runs are a millisecond apart
	require.Equal(t, sqlstore.SeqWindow{From: 5000 - skew, To: 15000 + skew}, w)
	for _, at := range []int64{0, 1, n, n + 5000} {
		w, err := s.CreatedWindow(ctx, store.RunFilter{CreatedAfter: storetest.BulkCreated(at).Add(store.CreatedSkew)})
		require.NoError(t, err)
		require.Equal(t, max(min(at, n+1), 1), w.From, "created after run %d", at)
	}

	// Gaps in seq (runs deleted): the search jumps over them.
	_, err = s.db.w.ExecContext(ctx, `DELETE FROM runs WHERE seq BETWEEN 3000 AND 4500`)
	require.NoError(t, err)
	w, err = s.CreatedWindow(ctx, f)
	require.NoError(t, err)
	require.Equal(t, int64(3000), w.From, "next to the last run created before the edge, the gap above it read as empty")

	// Runs stored out of creation order within the skew (as another
	// process's clock would have them): every third 250 ms early. A
	// window of 40 ms starting anywhere lists exactly its runs.
	_, err = s.db.w.ExecContext(ctx, `UPDATE runs SET created_at = created_at - 250000000 WHERE seq % 3 = 2`)
	require.NoError(t, err)
	created := func(seq int64) time.Time {
		if seq%3 == 2 {
			return storetest.BulkCreated(seq).Add(-250 * time.Millisecond)
		}
		return storetest.BulkCreated(seq)
	}
	for start := int64(2900); start < n; start += 97 {
		from, to := created(start), created(start).Add(40*time.Millisecond)
		var want []int64
		for seq := min(n, start+300); seq >= max(1, start-300); seq-- {
			if (seq < 3000 || seq > 4500) && !created(seq).Before(from) && created(seq).Before(to) {
				want = append(want, seq)
			}
		}
		runs, err := s.ListRuns(ctx, store.RunFilter{CreatedAfter: from, CreatedBefore: to})
		require.NoError(t, err)
		var got []int64
		for _, r := range runs {
			got = append(got, r.Seq)
		}
		require.Equal(t, want, got, "window from run %d", start)
	}

	p, err := s.db.pos.get(sqlstore.SeqCreatedFromSQL)
	require.NoError(t, err)
	args, err := p.args([]any{int64(1)})
	require.NoError(t, err)
	plan := queryPlanArgs(t, s, p.query, args)
	require.NotContains(t, plan, "SCAN runs", plan)
	require.Contains(t, plan, "SEARCH runs USING INTEGER PRIMARY KEY (rowid>?)", plan)
}

// queryPlanArgs is SQLite's EXPLAIN QUERY PLAN of q with args, its
// details joined by "; ".
func queryPlanArgs(t *testing.T, s *Store, q string, args []any) string {
	t.Helper()
	rows, err := s.db.w.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	require.NoError(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	require.NoError(t, rows.Err())
	return strings.Join(plan, "; ")
}
