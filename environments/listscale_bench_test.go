package environments_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/tasks/store/storetest"
)

// listQuery is one GET request BenchmarkListScale times; query builds its
// path and query for a store of n runs.
type listQuery struct {
	name  string
	query func(n int64, rng *rand.Rand) string
}

// fixed is a query that does not change between requests.
func fixed(q string) func(int64, *rand.Rand) string {
	return func(int64, *rand.Rand) string { return q }
}

// deep is q with the cursor of a page from a random point of the runs.
func deep(q string) func(int64, *rand.Rand) string {
	return func(n int64, rng *rand.Rand) string {
		cursor := base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(1+rng.Int64N(n), 10)))
		return q + "&cursor=" + cursor
	}
}

// window is q with a creation-time window of span from a random run
// (storetest.BulkCreated: runs are a millisecond apart); a zero span has
// no end (created_after alone), a negative one no start (created_before
// alone, -span after the run).
func window(q string, span time.Duration) func(int64, *rand.Rand) string {
	return func(n int64, rng *rand.Rand) string {
		at := storetest.BulkCreated(1 + rng.Int64N(n))
		v := url.Values{}
		if span >= 0 {
			v.Set("created_after", at.Format(time.RFC3339Nano))
		}
		if span != 0 {
			v.Set("created_before", at.Add(max(span, -span)).Format(time.RFC3339Nano))
		}
		return q + "&" + v.Encode()
	}
}

// listQueries are every filter of GET /runs, in the admin's view of
// everyone (all=true) and in the caller's own (storetest.BulkOwner, one run
// in ten), first pages, pages from anywhere (cursor), creation-time
// windows from anywhere (window), and GET
// /run/{name} of any run, and GET /queue.
var listQueries = []listQuery{
	{"all", fixed("/runs?all=true")},
	{"all-phase", fixed("/runs?all=true&phase=running")},
	{"all-phases", fixed("/runs?all=true&phase=failed&phase=aborted")},
	{"all-task", fixed("/runs?all=true&task=demo/development/sleep")},
	{"all-task-phase", fixed("/runs?all=true&task=demo/development/sleep&phase=queued")},
	{"all-task-cursor", deep("/runs?all=true&task=demo/development/sleep")},
	{"all-phase-cursor", deep("/runs?all=true&phase=queued")},
	{"own", fixed("/runs?limit=50")},
	{"own-phase", fixed("/runs?phase=queued")},
	{"own-task", fixed("/runs?task=demo/development/sleep")},
	{"own-task-phases", fixed("/runs?task=demo/development/sleep&phase=queued&phase=running")},
	{"own-cursor", deep("/runs?limit=50")},
	// Creation-time windows from anywhere in the runs: an hour from a
	// run (most of the table's minutes of runs), a minute, everything
	// since a run, everything before a run, with other filters.
	{"all-window", window("/runs?all=true", time.Hour)},
	{"all-phase-window", window("/runs?all=true&phase=failed", time.Minute)},
	{"all-task-since", window("/runs?all=true&task=demo/development/sleep", 0)},
	{"own-window", window("/runs?limit=50", time.Minute)},
	{"own-task-phases-before", window("/runs?task=demo/development/sleep&phase=queued&phase=running", -time.Minute)},
	{"get-run", func(n int64, rng *rand.Rand) string { return "/run/bulk-" + strconv.FormatInt(1+rng.Int64N(n), 10) }},
	// Not a list, but what a metrics scrape or the console's sampler asks
	// every few seconds: the active runs counted by phase.
	{"queue", fixed("/queue")},
}

// BenchmarkListScale measures GET /runs for each filter (listQueries) and
// GET /run/{name}, p50 and p99 of one client's sequential requests over
// real HTTP on loopback, with 100,000 and 1,000,000 runs stored (mixed
// owners, tasks, phases and times: storetest.BulkRunsSQL), on SQLite and,
// with TASKGATE_TEST_POSTGRES_URL, PostgreSQL. The stack is the
// quickstart's in the API role (no scheduler: queue positions are the
// leader's binary search, scheduler.BenchmarkPosition).
//
// Both sizes are served at once and asked in turn, request by request, so
// that whatever else loads the machine weighs on both alike:
// p99_ratio is the larger size's p99 over the smaller's (flat growth is a
// ratio near 1).
//
// Loading a million runs takes a minute or two per store, so it runs only
// with TASKGATE_BENCH_SCALE set (make bench-scale);
// TASKGATE_BENCH_LIST_SIZES overrides the sizes ("100000,1000000").
func BenchmarkListScale(b *testing.B) {
	if os.Getenv("TASKGATE_BENCH_SCALE") == "" {
		b.Skip("set TASKGATE_BENCH_SCALE=1 (make bench-scale): loads a million runs")
	}
	sizes := []int64{100_000, 1_000_000}
	if s := os.Getenv("TASKGATE_BENCH_LIST_SIZES"); s != "" {
		sizes = sizes[:0]
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.ParseInt(f, 10, 64)
			if err != nil || n < 1 {
				b.Fatalf("TASKGATE_BENCH_LIST_SIZES=%q: want sizes like 100000,1000000", s)
			}
			sizes = append(sizes, n)
		}
	}
	dbs := []struct{ name, url string }{{"sqlite", ""}}
	if u := os.Getenv("TASKGATE_TEST_POSTGRES_URL"); u != "" {
		dbs = append(dbs, struct{ name, url string }{"postgres", u})
	}
	for _, db := range dbs {
		stacks := make([]*benchServed, len(sizes))
		for i, n := range sizes {
			dir, dbURL := b.TempDir(), ""
			if db.url != "" {
				dbURL = benchDatabase(b, db.url)
			}
			start := time.Now()
			loadRuns(b, dir, dbURL, n)
			b.Logf("%s: %d runs loaded in %v", db.name, n, time.Since(start).Round(time.Second))
			stacks[i] = benchStackIn(b, dir, dbURL, "api")
		}
		for _, lq := range listQueries {
			b.Run(db.name+"/"+lq.name, func(b *testing.B) {
				rng := rand.New(rand.NewPCG(19, 1))
				lat := make([][]time.Duration, len(sizes))
				for round := range 20 + b.N { // 20 to warm connections and caches
					if round == 20 {
						b.ResetTimer()
					}
					for i, st := range stacks {
						u := st.base + lq.query(sizes[i], rng)
						t0 := time.Now()
						if _, err := benchDo(st.hc, http.MethodGet, u, nil, nil); err != nil {
							b.Fatal(err)
						}
						if round >= 20 {
							lat[i] = append(lat[i], time.Since(t0))
						}
					}
				}
				for i, n := range sizes {
					b.ReportMetric(benchPercentile(lat[i], 0.50), sizeName(n)+"-p50-ms")
					b.ReportMetric(benchPercentile(lat[i], 0.99), sizeName(n)+"-p99-ms")
				}
				if last := len(sizes) - 1; last > 0 {
					b.ReportMetric(benchPercentile(lat[last], 0.99)/benchPercentile(lat[0], 0.99), "p99_ratio")
				}
			})
		}
		for _, st := range stacks {
			st.stop()
		}
	}
}

// sizeName writes n as 100k or 1M.
func sizeName(n int64) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.FormatInt(n/1_000_000, 10) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.FormatInt(n/1000, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// loadRuns creates the stack's database (the stack migrates it), then
// inserts n runs with storetest.BulkRunsSQL, 100,000 a statement, and
// brings the statistics up to date on PostgreSQL (autovacuum would, a
// little later). SQLite is left without statistics, as the store runs.
func loadRuns(b *testing.B, dir, dbURL string, n int64) {
	b.Helper()
	benchStackIn(b, dir, dbURL, "api").stop()
	ctx := context.Background()
	const chunk = 100_000
	if dbURL == "" {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "taskgate.db")+"?_pragma=journal_mode(WAL)&_pragma=cache_size(-262144)")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		for first := int64(1); first <= n; first += chunk {
			if _, err := db.ExecContext(ctx, storetest.BulkRunsSQL(first, min(first+chunk-1, n))); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	for first := int64(1); first <= n; first += chunk {
		if _, err := conn.Exec(ctx, storetest.BulkRunsSQL(first, min(first+chunk-1, n))); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE runs"); err != nil {
		b.Fatal(err)
	}
}
