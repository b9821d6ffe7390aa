package environments_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // the bare-insert baseline's driver, as the store uses it

	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/internal/benchstack"
	"github.com/taskgate/taskgate/tasks"
)

// benchToken is the static bearer token of the benchmarked stacks.
const benchToken = benchstack.Token

// benchParallelism makes b.RunParallel use 16 client goroutines per
// GOMAXPROCS, so that concurrent submissions can share group commits.
const benchParallelism = 16

// BenchmarkRunTask measures the prebuilt webhook environment's data path
// beside its bare baselines, all in one run:
//
//   - bare-chi: a chi router with one JSON handler (req/s), the ceiling of
//     the HTTP layer on this machine;
//   - sqlite/bare-insert, sqlite/run-task: single-row INSERT + COMMIT on
//     modernc SQLite (WAL, synchronous=FULL) against durable accepted runs/s
//     through POST /run-task with a bearer token on the quickstart's SQLite
//     stack (each 202 is fsynced);
//   - sqlite/run-task-no-exec: the same with no scheduler in the process
//     (TASKGATE_ROLE=agent), so that nothing executes the runs: the submit
//     path alone;
//   - postgres/bare-insert, postgres/run-task, postgres/run-task-no-exec:
//     the same on PostgreSQL when TASKGATE_TEST_POSTGRES_URL is set (a
//     fresh database, dropped after);
//   - execute: b.N echo runs submitted in parallel, then waited for until
//     every one is terminal: accepted and executed runs/s on SQLite;
//   - cycle: POST /run-task (echo) -> GET /run/{name} until done -> GET
//     /run/{name}/io, requests/s and cycle latency p50/p99;
//   - submit-to-running: on an idle node, the time from sending POST
//     /run-task to the dispatcher's running event, p50/p99.
//
// The req/s and runs/s figures come from the same wrk-like generator
// (loadgen_test.go: loadConns keep-alive connections, requests built once),
// so ratio_to_bare_chi compares like with like; the bare inserts run from
// GOMAXPROCS*16 goroutines; cycle and submit-to-running use http.Client.
func BenchmarkRunTask(b *testing.B) {
	var bareChi float64
	b.Run("bare-chi", func(b *testing.B) {
		srv := httptest.NewServer(benchstack.BareChi())
		defer srv.Close()
		addr, req, err := rawRequest(http.MethodGet, srv.URL+"/health", "", nil)
		if err != nil {
			b.Fatal(err)
		}
		res := runLoad(b, addr, req, nil)
		bareChi = res.rate()
		b.ReportMetric(bareChi, "req/s")
		b.ReportMetric(benchPercentile(res.lat, 0.99), "p99-ms")
	})

	dbs := []struct{ name, url string }{{"sqlite", ""}}
	if u := os.Getenv("TASKGATE_TEST_POSTGRES_URL"); u != "" {
		dbs = append(dbs, struct{ name, url string }{"postgres", u})
	}
	for _, db := range dbs {
		dbURL := ""
		if db.url != "" {
			dbURL = benchDatabase(b, db.url)
		}
		var (
			bare float64
			// seq outlives the rounds of b.N: they share one PostgreSQL table.
			seq atomic.Int64
		)
		b.Run(db.name+"/bare-insert", func(b *testing.B) {
			insert, done := benchInserter(b, dbURL)
			defer done()
			bare = benchParallel(b, func() (int, error) {
				return http.StatusOK, insert(fmt.Sprintf("bare-%d", seq.Add(1)))
			})
			b.ReportMetric(bare, "inserts/s")
		})
		// run-task is the quickstart as it runs (scheduler and node agent
		// executing the accepted runs in the same process); no-exec runs no
		// scheduler, which separates the submit path from execution.
		for _, v := range []struct{ name, role string }{{"run-task", ""}, {"run-task-no-exec", "agent"}} {
			st := benchStack(b, dbURL, v.role)
			b.Run(db.name+"/"+v.name, func(b *testing.B) {
				res := benchSubmitLoad(b, st)
				rate := res.rate()
				b.ReportMetric(rate, "runs/s")
				b.ReportMetric(benchPercentile(res.lat, 0.50), "p50-ms")
				b.ReportMetric(benchPercentile(res.lat, 0.99), "p99-ms")
				if bare > 0 {
					b.ReportMetric(rate/bare, "ratio_to_bare_insert")
				}
				if bareChi > 0 {
					b.ReportMetric(rate/bareChi, "ratio_to_bare_chi")
				}
			})
			st.stop()
		}
	}

	b.Run("execute", func(b *testing.B) {
		st := benchStack(b, "", "")
		defer st.stop()
		var done atomic.Int64
		finished := make(chan struct{}, 1)
		unsubscribe := st.svc.Dispatcher.Subscribe(func(_ tasks.Run, ev tasks.Event) {
			if ev.Phase.Terminal() {
				done.Add(1)
				select {
				case finished <- struct{}{}:
				default:
				}
			}
		})
		defer unsubscribe()
		rate := benchSubmitLoad(b, st).rate()
		b.StartTimer()
		deadline := time.After(5 * time.Minute)
		for done.Load() < int64(b.N) {
			select {
			case <-finished:
			case <-deadline:
				b.Fatalf("%d of %d runs done after 5 minutes", done.Load(), b.N)
			}
		}
		b.StopTimer()
		b.ReportMetric(rate, "accepted_runs/s")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "executed_runs/s")
	})

	b.Run("cycle", func(b *testing.B) {
		st := benchStack(b, "", "")
		defer st.stop()
		var (
			requests atomic.Int64
			mu       sync.Mutex
			lat      []time.Duration
		)
		body := []byte(`{"message":"hi"}`)
		rate := benchParallel(b, func() (int, error) {
			start := time.Now()
			n, err := benchCycle(st, body)
			requests.Add(int64(n))
			if err != nil {
				return 0, err
			}
			d := time.Since(start)
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
			return http.StatusOK, nil
		})
		reqRate := float64(requests.Load()) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "cycles/s")
		b.ReportMetric(reqRate, "req/s")
		b.ReportMetric(benchPercentile(lat, 0.50), "p50-ms")
		b.ReportMetric(benchPercentile(lat, 0.99), "p99-ms")
		if bareChi > 0 {
			b.ReportMetric(reqRate/bareChi, "ratio_to_bare_chi")
		}
	})

	b.Run("submit-to-running", func(b *testing.B) {
		st := benchStack(b, "", "")
		defer st.stop()
		var mu sync.Mutex
		// seenAt[phase][run] is when the dispatcher told its subscribers.
		seenAt := map[tasks.Phase]map[string]time.Time{
			tasks.PhaseInitializing: {}, tasks.PhaseRunning: {},
		}
		seen := make(chan struct{}, 1)
		unsubscribe := st.svc.Dispatcher.Subscribe(func(run tasks.Run, ev tasks.Event) {
			now := time.Now()
			mu.Lock()
			if m, ok := seenAt[ev.Phase]; ok {
				m[run.Name] = now
			}
			mu.Unlock()
			if ev.Phase == tasks.PhaseRunning {
				select {
				case seen <- struct{}{}:
				default:
				}
			}
		})
		defer unsubscribe()
		body := []byte(`{"message":"hi"}`)
		var accept, bind, run []time.Duration
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			var a struct{ Name string }
			if err := benchPost(st, "/run-task/demo/development/echo", body, &a); err != nil {
				b.Fatal(err)
			}
			accepted := time.Now()
			deadline := time.After(10 * time.Second)
			for {
				mu.Lock()
				running, ok := seenAt[tasks.PhaseRunning][a.Name]
				initializing := seenAt[tasks.PhaseInitializing][a.Name]
				mu.Unlock()
				if ok {
					accept = append(accept, accepted.Sub(start))
					bind = append(bind, initializing.Sub(start))
					run = append(run, running.Sub(start))
					break
				}
				select {
				case <-seen:
				case <-deadline:
					b.Fatalf("run %s not running after 10s", a.Name)
				}
			}
			// Idle node: let the run finish before the next submission.
			if _, err := st.svc.Dispatcher.Wait(context.Background(), a.Name); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(benchPercentile(run, 0.50), "p50-ms")
		b.ReportMetric(benchPercentile(run, 0.99), "p99-ms")
		// Where the time goes: the durable 202, then the scheduler's binding
		// (initializing), then the agent's start (running).
		b.ReportMetric(benchPercentile(accept, 0.50), "accepted-p50-ms")
		b.ReportMetric(benchPercentile(accept, 0.99), "accepted-p99-ms")
		b.ReportMetric(benchPercentile(bind, 0.50), "initializing-p50-ms")
		b.ReportMetric(benchPercentile(bind, 0.99), "initializing-p99-ms")
	})
}

// benchSubmitLoad POSTs b.N echo runs to st from loadConns connections,
// checking that each 202 names a run.
func benchSubmitLoad(b *testing.B, st *benchServed) loadResult {
	b.Helper()
	addr, req, err := rawRequest(http.MethodPost, st.base+"/run-task/demo/development/echo", benchToken, []byte(`{"message":"hi"}`))
	if err != nil {
		b.Fatal(err)
	}
	return runLoad(b, addr, req, func(body []byte) error {
		if !bytes.Contains(body, []byte(`"name":"r`)) {
			return fmt.Errorf("202 without a run name: %s", body)
		}
		return nil
	})
}

// benchHTTPClient keeps a connection alive per client goroutine.
func benchHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 1024
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// benchParallel runs op b.N times from GOMAXPROCS*benchParallelism
// goroutines and returns operations per second. An error or a status
// other than 200 or 202 fails the benchmark.
func benchParallel(b *testing.B, op func() (int, error)) float64 {
	b.Helper()
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			code, err := op()
			if err != nil {
				b.Error(err)
				return
			}
			if code != http.StatusOK && code != http.StatusAccepted {
				b.Errorf("status %d", code)
				return
			}
		}
	})
	b.StopTimer()
	return float64(b.N) / b.Elapsed().Seconds()
}

// benchDo sends one request and drains the reply; out, when not nil, gets
// the decoded JSON body.
func benchDo(hc *http.Client, method, u string, body []byte, out any) (int, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+benchToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: status %d: %s", method, u, resp.StatusCode, b)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

// benchServed is the quickstart's stack served on loopback.
type benchServed struct {
	svc  *framework.Service
	base string
	hc   *http.Client
	stop func()
}

// benchStack serves the quickstart's stack (internal/benchstack): SQLite
// in a temp dir when dbURL is empty, else that database. With role "" (all)
// the local node agent runs the submitted runs, as in `make run`; with
// "agent" no scheduler runs in the process, so runs stay queued.
func benchStack(b *testing.B, dbURL, role string) *benchServed {
	b.Helper()
	return benchStackIn(b, b.TempDir(), dbURL, role)
}

// benchStackIn is benchStack with its SQLite database in dir.
func benchStackIn(b *testing.B, dir, dbURL, role string) *benchServed {
	b.Helper()
	st, err := benchstack.Start(context.Background(), dir, dbURL, role)
	if err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(st.Close) }
	b.Cleanup(stop)
	return &benchServed{svc: st.Service, base: st.URL, hc: benchHTTPClient(), stop: stop}
}

// benchPost POSTs body to path and decodes the reply into out.
func benchPost(st *benchServed, path string, body []byte, out any) error {
	_, err := benchDo(st.hc, http.MethodPost, st.base+path, body, out)
	return err
}

// benchCycle is one client's life of a run: submit, poll until done, read
// the outputs. It returns how many requests it sent.
func benchCycle(st *benchServed, body []byte) (int, error) {
	var a struct{ Name string }
	if err := benchPost(st, "/run-task/demo/development/echo", body, &a); err != nil {
		return 1, err
	}
	n := 1
	for {
		var s struct {
			Done  bool   `json:"done"`
			Phase string `json:"phase"`
		}
		n++
		if _, err := benchDo(st.hc, http.MethodGet, st.base+"/run/"+a.Name, nil, &s); err != nil {
			return n, err
		}
		if s.Done {
			if s.Phase != "succeeded" {
				return n, fmt.Errorf("run %s ended %s", a.Name, s.Phase)
			}
			break
		}
		time.Sleep(time.Millisecond)
	}
	var got struct {
		Outputs struct {
			Message string `json:"message"`
		} `json:"outputs"`
	}
	n++
	if _, err := benchDo(st.hc, http.MethodGet, st.base+"/run/"+a.Name+"/io", nil, &got); err != nil {
		return n, err
	}
	if got.Outputs.Message != "hi" {
		return n, fmt.Errorf("run %s: outputs say %q", a.Name, got.Outputs.Message)
	}
	return n, nil
}

// benchInserter returns the bare baseline: one single-row INSERT and
// COMMIT per call, on SQLite (dbURL empty: modernc, WAL, synchronous=FULL,
// one writer connection, as the store has) or PostgreSQL (default,
// durable commit; a pool as large as the client goroutines).
func benchInserter(b *testing.B, dbURL string) (insert func(name string) error, done func()) {
	b.Helper()
	ctx := context.Background()
	payload := []byte(`{"message":"hi"}`)
	if dbURL == "" {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		db, err := sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "bare.db")+"?"+q.Encode())
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		if _, err := db.ExecContext(ctx, benchBareTable); err != nil {
			b.Fatal(err)
		}
		return func(name string) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, benchBareInsert, name, "bencher", payload, time.Now().UnixNano()); err != nil {
				_ = tx.Rollback()
				return err
			}
			return tx.Commit()
		}, func() { db.Close() }
	}
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	pc.MaxConns = int32(benchParallelism * runtime.GOMAXPROCS(0))
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, benchBareTable); err != nil {
		b.Fatal(err)
	}
	return func(name string) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, benchBareInsert, name, "bencher", payload, time.Now().UnixNano()); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		return tx.Commit(ctx)
	}, pool.Close
}

// The bare baseline's table: a run's name, owner, inputs and time.
const (
	benchBareTable  = `CREATE TABLE IF NOT EXISTS bench_bare (name TEXT PRIMARY KEY, owner TEXT NOT NULL, inputs BYTEA NOT NULL, created_at BIGINT NOT NULL)`
	benchBareInsert = `INSERT INTO bench_bare (name, owner, inputs, created_at) VALUES ($1, $2, $3, $4)`
)

// benchDatabase creates an empty PostgreSQL database beside baseURL's and
// returns its URL; cleanup drops it. A database, not a schema: the stack
// takes only a URL, and NOTIFY channels are scoped by database.
func benchDatabase(b *testing.B, baseURL string) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		b.Fatalf("connect to TASKGATE_TEST_POSTGRES_URL: %v", err)
	}
	defer conn.Close(ctx)
	buf := make([]byte, 6)
	_, _ = rand.Read(buf)
	name := "taskgate_bench_" + hex.EncodeToString(buf)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		b.Fatalf("create database: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, baseURL)
		if err != nil {
			b.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			b.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(baseURL)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// benchPercentile is the q-quantile of ds in milliseconds (nearest rank).
func benchPercentile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return float64(s[max(0, i)]) / float64(time.Millisecond)
}
