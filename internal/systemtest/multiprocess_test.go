package systemtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/tasks/store/postgres"
)

const mpToken = "multiprocess-token-0123456789"

// freshDatabase creates an empty database beside the one of baseURL and
// returns its URL; cleanup drops it (after the processes that use it are
// stopped, since cleanups run last-in first-out).
//
// A database rather than a schema: the quickstart reads only
// TASKGATE_DATABASE_URL. A search_path parameter in that URL would reach
// PostgreSQL as a runtime parameter, but the schema would have to exist
// already and the LISTEN/NOTIFY channel would stay the unscoped "taskgate",
// shared with every other user of the database; notifications are scoped
// by database, so a fresh database isolates the test completely.
func freshDatabase(t *testing.T, baseURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		t.Fatalf("connect to TASKGATE_TEST_POSTGRES_URL: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "taskgate_systest_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, baseURL)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// cluster is two API processes and two node agents sharing one database.
type cluster struct {
	apis   []*proc
	agents map[string]*proc
}

// TestMultiProcessPostgres runs 2 API processes (-role api) and 2 node
// agents (-role agent, A100:2 each) on one PostgreSQL database. Killing the
// process that holds the scheduler lease does not stop scheduling for
// long; killing a node agent while it runs tasks sends them to the other
// node, where they finish.
func TestMultiProcessPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: starts 4 quickstart processes; skipped in -short")
	}
	pgURL := os.Getenv("TASKGATE_TEST_POSTGRES_URL")
	if pgURL == "" {
		t.Skip("TASKGATE_TEST_POSTGRES_URL is unset: set it to a PostgreSQL URL " +
			"(e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the multi-process test")
	}
	dbURL := freshDatabase(t, pgURL)
	bin := quickstart(t)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	common := func(extra map[string]string) map[string]string {
		m := map[string]string{
			"TASKGATE_DATABASE_URL": dbURL,
			"TASKGATE_DATA_DIR":     t.TempDir(),
			"TASKGATE_AUTH_TOKENS":  mpToken + "=operator:admins",
			// Shared, so that any API process signs callbacks the same way.
			"TASKGATE_WEBHOOK_SECRET": "whsec_" + base64.StdEncoding.EncodeToString(secret),
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cl := &cluster{agents: map[string]*proc{}}
	for i := range 2 {
		p := newProc(t, fmt.Sprintf("api-%d", i+1), bin, freeAddr(t),
			common(map[string]string{"TASKGATE_NODE_ID": fmt.Sprintf("api-%d", i+1)}), "-role", "api")
		cl.apis = append(cl.apis, p)
	}
	for _, id := range []string{"node-a", "node-b"} {
		cl.agents[id] = newProc(t, id, bin, freeAddr(t),
			common(map[string]string{"TASKGATE_NODE_ID": id, "TASKGATE_NODE_GPUS": "A100:2"}), "-role", "agent")
	}
	// api-1 migrates the fresh database alone; the others start together.
	// (Starting all four on the empty database trips a migration race:
	// see TestConcurrentFirstStartOnPostgres.)
	cl.apis[0].mustStart()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, p := range []*proc{cl.apis[1], cl.agents["node-a"], cl.agents["node-b"]} {
		wg.Go(func() { errs <- p.start(context.Background()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	clients := []*client{newClient(cl.apis[0].base(), mpToken), newClient(cl.apis[1].base(), mpToken)}

	waitNodes(ctx, t, clients[0], "node-a", "node-b")

	t.Run("runs on both API processes", func(t *testing.T) {
		var names []string
		for i := range 10 {
			names = append(names, submit(ctx, t, clients[i%2], "echo", map[string]any{"message": fmt.Sprint(i)}))
		}
		// A GPU run: placed on a node with a free A100, devices assigned.
		names = append(names, submit(ctx, t, clients[1], "train", map[string]any{}))
		final, err := waitAll(ctx, clients[0], names, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if st := final[name]; st.Phase != "succeeded" || (st.Node != "node-a" && st.Node != "node-b") {
				t.Errorf("run %s: phase %s on node %q, want succeeded on node-a or node-b", name, st.Phase, st.Node)
			}
		}
	})

	t.Run("scheduler fails over", func(t *testing.T) {
		leader := waitLeader(ctx, t, cl, clients)
		survivor := 1 - leader
		cl.apis[leader].kill()
		killed := time.Now()
		t.Logf("killed %s, the scheduler leader", cl.apis[leader].name)
		var names []string
		for i := range 5 {
			names = append(names, submit(ctx, t, clients[survivor], "echo", map[string]any{"message": fmt.Sprint("after ", i)}))
		}
		final, err := waitAll(ctx, clients[survivor], names, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if final[name].Phase != "succeeded" {
				t.Errorf("run %s ended %s: %s", name, final[name].Phase, final[name].Error)
			}
		}
		t.Logf("runs submitted after the kill succeeded %s after it", time.Since(killed).Round(time.Millisecond))
		var q struct {
			Leader bool `json:"leader"`
		}
		if _, err := clients[survivor].call(ctx, http.MethodGet, "/queue", nil, nil, &q); err != nil {
			t.Fatal(err)
		}
		if !q.Leader {
			t.Errorf("%s does not report leader: true after the failover", cl.apis[survivor].name)
		}
		// Bring the killed process back for the next subtest, as a follower.
		if err := cl.apis[leader].start(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("node agent dies mid-run", func(t *testing.T) {
		c := clients[0]
		var names []string
		for range 6 {
			names = append(names, submit(ctx, t, c, "sleep", map[string]any{"seconds": 2}))
		}
		// Wait until every run runs, then kill the node that holds most.
		byNode := map[string][]string{}
		deadline := time.Now().Add(20 * time.Second)
		for {
			clear(byNode)
			running := 0
			for _, name := range names {
				var st runStatus
				if _, err := c.call(ctx, http.MethodGet, "/run/"+name, nil, nil, &st); err != nil {
					t.Fatal(err)
				}
				if st.Phase == "running" {
					running++
					byNode[st.Node] = append(byNode[st.Node], name)
				}
				if st.Done {
					t.Fatalf("run %s ended (%s) before the node was killed", name, st.Phase)
				}
			}
			if running == len(names) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d runs running after 20s", running, len(names))
			}
			time.Sleep(50 * time.Millisecond)
		}
		victim, other := "node-a", "node-b"
		if len(byNode["node-b"]) > len(byNode["node-a"]) {
			victim, other = other, victim
		}
		orphans := byNode[victim]
		cl.agents[victim].kill()
		killed := time.Now()
		t.Logf("killed %s while it ran %d of %d sleep runs", victim, len(orphans), len(names))

		final, err := waitAll(ctx, c, names, 45*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("all runs succeeded %s after the kill", time.Since(killed).Round(time.Millisecond))
		for _, name := range names {
			st := final[name]
			if st.Phase != "succeeded" {
				t.Errorf("run %s ended %s: %s", name, st.Phase, st.Error)
				continue
			}
			if n := succeededAttempts(st); n != 1 {
				t.Errorf("run %s: %d succeeded attempts, want 1: %+v", name, n, st.Attempts)
			}
		}
		for _, name := range orphans {
			st := final[name]
			last := st.Attempts[len(st.Attempts)-1]
			if last.Node != other || st.Node != other {
				t.Errorf("orphaned run %s finished on node %q (last attempt on %q), want %s", name, st.Node, last.Node, other)
			}
			if first := st.Attempts[0]; len(st.Attempts) < 2 || first.Node != victim || first.Phase == "succeeded" {
				t.Errorf("orphaned run %s: attempts %+v, want a first unsuccessful attempt on %s", name, st.Attempts, victim)
			}
		}
	})
}

// TestConcurrentFirstStartOnPostgres starts four processes at once on an
// empty database, as a fleet does on its first deployment. Each must
// become healthy: schema migrations are meant to be serialized between
// processes by an advisory lock.
func TestConcurrentFirstStartOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 quickstart processes; skipped in -short")
	}
	pgURL := os.Getenv("TASKGATE_TEST_POSTGRES_URL")
	if pgURL == "" {
		t.Skip("TASKGATE_TEST_POSTGRES_URL is unset: set it to a PostgreSQL URL to run this test")
	}
	dbURL := freshDatabase(t, pgURL)
	bin := quickstart(t)
	var ps []*proc
	for i := range 4 {
		ps = append(ps, newProc(t, fmt.Sprintf("api-%d", i+1), bin, freeAddr(t), map[string]string{
			"TASKGATE_DATABASE_URL": dbURL,
			"TASKGATE_DATA_DIR":     t.TempDir(),
			"TASKGATE_AUTH_TOKENS":  mpToken + "=operator:admins",
			"TASKGATE_NODE_ID":      fmt.Sprintf("api-%d", i+1),
		}, "-role", "api"))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ps))
	for i, p := range ps {
		wg.Go(func() { errs[i] = p.start(context.Background()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %v", ps[i].name, err)
		}
	}
}

// TestConcurrentOpenOnEmptyPostgres is TestConcurrentFirstStartOnPostgres
// without the jitter of process start-up: eight stores open one empty
// database at the same moment, as the processes of a fleet's first
// deployment may. Every Open must succeed.
func TestConcurrentOpenOnEmptyPostgres(t *testing.T) {
	pgURL := os.Getenv("TASKGATE_TEST_POSTGRES_URL")
	if pgURL == "" {
		t.Skip("TASKGATE_TEST_POSTGRES_URL is unset: set it to a PostgreSQL URL to run this test")
	}
	dbURL := freshDatabase(t, pgURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 8
	errs := make([]error, n)
	ready := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-ready
			st, err := postgres.Open(ctx, postgres.Config{URL: dbURL})
			if err == nil {
				err = st.Close()
			}
			errs[i] = err
		})
	}
	close(ready)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
}

// submit POSTs one run and returns its name.
func submit(ctx context.Context, t *testing.T, c *client, task string, input map[string]any) string {
	t.Helper()
	var a accepted
	if _, err := c.call(ctx, http.MethodPost, "/run-task/demo/development/"+task, input, nil, &a); err != nil {
		t.Fatal(err)
	}
	return a.Name
}

// waitNodes waits until GET /nodes lists every node as healthy.
func waitNodes(ctx context.Context, t *testing.T, c *client, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var out struct {
			Nodes []struct {
				ID      string `json:"id"`
				Healthy bool   `json:"healthy"`
			} `json:"nodes"`
		}
		if _, err := c.call(ctx, http.MethodGet, "/nodes", nil, nil, &out); err != nil {
			t.Fatal(err)
		}
		healthy := map[string]bool{}
		for _, n := range out.Nodes {
			healthy[n.ID] = n.Healthy
		}
		all := true
		for _, id := range ids {
			all = all && healthy[id]
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes %v not all healthy after 20s: %+v", ids, out.Nodes)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLeader returns the index of the API process that reports
// leader: true in GET /queue, once exactly one does.
func waitLeader(ctx context.Context, t *testing.T, cl *cluster, clients []*client) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		leaders := []int{}
		for i, c := range clients {
			var q struct {
				Leader bool `json:"leader"`
			}
			if _, err := c.call(ctx, http.MethodGet, "/queue", nil, nil, &q); err != nil {
				t.Fatal(err)
			}
			if q.Leader {
				leaders = append(leaders, i)
			}
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
		if len(leaders) > 1 {
			t.Fatalf("both %s and %s report leader: true", cl.apis[0].name, cl.apis[1].name)
		}
		if time.Now().After(deadline) {
			t.Fatal("no API process reports leader: true after 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
