package storetest

import (
	"fmt"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// BulkOwner owns every tenth run BulkRunsSQL inserts.
const BulkOwner = "bencher"

// BulkRunsSQL is one INSERT of the runs numbered first to last into the
// runs table, on SQLite and PostgreSQL alike (a recursive CTE, no
// parameters), for benchmarks and plan tests that need many runs stored
// and have no time to submit them: a million runs load in a minute, where
// submitting them would take many.
//
// The runs mix owners, tasks, phases and times as a busy deployment's do,
// through moduli with no common factor, so that every combination of the
// filters exists, some rarely:
//   - owner: BulkOwner for 1 run in 10, else one of 997 others;
//   - task: demo/development/sleep for 1 in 17, demo/development/fail for
//     1 in 17, else demo/development/echo;
//   - phase: of 101, 2 queued, 1 each waiting_for_resources, initializing
//     and running, 5 failed, 1 aborted, 1 timed_out, the rest succeeded;
//   - created one millisecond apart from 2026-01-01, in number order
//     (BulkCreated).
//
// Names are "bulk-<number>". Inputs and outputs are left empty.
func BulkRunsSQL(first, last int64) string {
	return fmt.Sprintf(`WITH RECURSIVE n(i) AS (
	SELECT CAST(%[1]d AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < %[2]d)
INSERT INTO runs (name, project, domain, task, version, owner, phase, node, attempt, created_at, started_at, finished_at)
SELECT 'bulk-' || i, 'demo', 'development',
	CASE i %% 17 WHEN 0 THEN 'sleep' WHEN 1 THEN 'fail' ELSE 'echo' END, 'v1',
	CASE WHEN i %% 10 = 3 THEN '%[3]s' ELSE 'user-' || (i %% 997) END,
	phase,
	CASE WHEN placed = 1 THEN 'bulk-node' ELSE '' END,
	placed,
	created,
	CASE WHEN placed = 1 THEN created + 1000 ELSE 0 END,
	CASE WHEN phase IN ('succeeded', 'failed', 'aborted', 'timed_out') THEN created + 2000 ELSE 0 END
FROM (SELECT i, created, phase, CASE WHEN phase IN ('queued', 'waiting_for_resources') THEN 0 ELSE 1 END AS placed
	FROM (SELECT i, %[4]d + i * %[5]d AS created, CASE i %% 101
		WHEN 0 THEN 'queued' WHEN 1 THEN 'queued' WHEN 2 THEN 'waiting_for_resources'
		WHEN 3 THEN 'initializing' WHEN 4 THEN 'running'
		WHEN 5 THEN 'failed' WHEN 6 THEN 'failed' WHEN 7 THEN 'failed' WHEN 8 THEN 'failed' WHEN 9 THEN 'failed'
		WHEN 10 THEN 'aborted' WHEN 11 THEN 'timed_out' ELSE 'succeeded' END AS phase
		FROM n) AS numbered) AS runs_to_load`, first, last, BulkOwner, bulkEpoch.UnixNano(), time.Millisecond.Nanoseconds())
}

// bulkEpoch is when BulkRunsSQL's run 0 would have been created.
var bulkEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// BulkCreated is when BulkRunsSQL's run i was created.
func BulkCreated(i int64) time.Time {
	return bulkEpoch.Add(time.Duration(i) * time.Millisecond)
}

// ListFilter is one combination of the filters of ListRuns, with the
// columns an index must constrain to serve it.
type ListFilter struct {
	Name   string
	Filter store.RunFilter
	// Columns are the filter's columns in index order (owner, project,
	// domain, task, phase); seq bounds every search besides.
	Columns []string
	// Arms is the number of index ranges the filter reads: one per phase.
	Arms int
}

// ListFilters are every combination of owner (the admin's view of
// everyone or BulkOwner's own), task, phases (none, one, two, all) and
// page (the first, one from the middle of before runs by cursor, or a
// creation-time window over the second quarter of them) that GET /runs
// can ask ListRuns for, on the runs BulkRunsSQL loads.
func ListFilters(before int64) []ListFilter {
	var out []ListFilter
	for _, owner := range []string{"", BulkOwner} {
		for _, task := range []string{"", "demo/development/sleep"} {
			for _, ps := range [][]tasks.Phase{nil, {tasks.PhaseQueued}, {tasks.PhaseFailed, tasks.PhaseAborted}, tasks.Phases} {
				for _, page := range []string{"first", "cursor", "window"} {
					lf := ListFilter{
						Name:   fmt.Sprintf("owner=%s,task=%s,phases=%d,page=%s", owner, task, len(ps), page),
						Filter: store.RunFilter{Owner: owner, Task: task, Phases: ps, Limit: 51},
						Arms:   max(len(ps), 1),
					}
					switch page {
					case "cursor":
						lf.Filter.BeforeSeq = before / 2
					case "window":
						lf.Filter.CreatedAfter, lf.Filter.CreatedBefore = BulkCreated(before/4), BulkCreated(before/2)
					}
					if owner != "" {
						lf.Columns = append(lf.Columns, "owner")
					}
					if task != "" {
						lf.Columns = append(lf.Columns, "project", "domain", "task")
					}
					if len(ps) == len(tasks.Phases) && len(lf.Columns) == 0 {
						lf.Arms = 1 // every phase is no filter: the primary key
					}
					if len(ps) == 0 && len(lf.Columns) > 0 {
						lf.Arms = len(tasks.Phases) // every phase, merged
					}
					if len(lf.Columns) > 0 || len(ps) == 1 || lf.Arms > 1 {
						lf.Columns = append(lf.Columns, "phase")
					}
					out = append(out, lf)
				}
			}
		}
	}
	return out
}
