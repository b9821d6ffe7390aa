package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/internal/benchstack"
)

func main() {
	duration := flag.Duration("d", 5*time.Second, "wrk duration per measurement")
	conns := flag.Int("c", 64, "wrk connections")
	threads := flag.Int("t", 2, "wrk threads")
	flag.Parse()
	if err := run(*duration, *conns, *threads); err != nil {
		fmt.Fprintln(os.Stderr, "benchwrk:", err)
		os.Exit(1)
	}
}

func run(d time.Duration, conns, threads int) error {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return errors.New("wrk not found (make bench-wrk installs it)")
	}
	dir, err := os.MkdirTemp("", "benchwrk")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "post.lua")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(`wrk.method = "POST"
wrk.body = '{"message":"hi"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
`, benchstack.Token)), 0o600); err != nil {
		return err
	}
	w := wrkRunner{bin: wrk, d: d, conns: conns, threads: threads}
	fmt.Printf("wrk -t%d -c%d -d%s over loopback, server GOMAXPROCS=%d\n\n", threads, conns, d, runtime.GOMAXPROCS(0))

	bare, err := benchstack.Serve(benchstack.BareChi())
	if err != nil {
		return err
	}
	base, err := w.run(bare.URL+"/health", "")
	bare.Close()
	if err != nil {
		return fmt.Errorf("bare chi: %w", err)
	}
	fmt.Printf("%-45s %7.0f req/s   p50 %7s  p99 %7s\n", "bare chi GET /health", base.rate, base.p50, base.p99)

	dbs := []struct{ name, url string }{{"sqlite", ""}}
	if u := os.Getenv("TASKGATE_TEST_POSTGRES_URL"); u != "" {
		pg, drop, err := freshDatabase(u)
		if err != nil {
			return err
		}
		defer drop()
		dbs = append(dbs, struct{ name, url string }{"postgres", pg})
	}
	for _, db := range dbs {
		for _, mode := range []struct{ name, role string }{{"all-in-one", ""}, {"submit path only", "agent"}} {
			st, err := stack(filepath.Join(dir, db.name+mode.role), db.url, mode.role)
			if err != nil {
				return fmt.Errorf("%s %s: %w", db.name, mode.name, err)
			}
			res, err := w.run(st.URL+"/run-task/demo/development/echo", script)
			st.Close()
			if err != nil {
				return fmt.Errorf("%s %s: %w", db.name, mode.name, err)
			}
			fmt.Printf("%-45s %7.0f runs/s  p50 %7s  p99 %7s  %.3f of bare chi\n",
				db.name+" POST /run-task, "+mode.name, res.rate, res.p50, res.p99, res.rate/base.rate)
		}
	}
	return nil
}

type wrkRunner struct {
	bin            string
	d              time.Duration
	conns, threads int
}

type wrkResult struct {
	rate     float64
	p50, p99 string
}

var (
	reRate  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reP50   = regexp.MustCompile(`(?m)^\s+50%\s+(\S+)`)
	reP99   = regexp.MustCompile(`(?m)^\s+99%\s+(\S+)`)
	reNon2x = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSock  = regexp.MustCompile(`Socket errors:.*`)
)

// run drives u for w.d, with script when not empty, and fails on any
// non-2xx reply or socket error.
func (w wrkRunner) run(u, script string) (wrkResult, error) {
	args := []string{"-t" + strconv.Itoa(w.threads), "-c" + strconv.Itoa(w.conns), "-d" + w.d.String(), "--latency"}
	if script != "" {
		args = append(args, "-s", script)
	}
	out, err := exec.Command(w.bin, append(args, u)...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	return parseWrk(out)
}

// parseWrk reads wrk --latency output: the rate and the p50/p99
// latencies. Non-2xx replies or socket errors are an error.
func parseWrk(out []byte) (wrkResult, error) {
	if m := reNon2x.FindSubmatch(out); m != nil {
		return wrkResult{}, fmt.Errorf("%s non-2xx replies:\n%s", m[1], out)
	}
	if m := reSock.Find(out); m != nil {
		return wrkResult{}, fmt.Errorf("%s:\n%s", m, out)
	}
	m := reRate.FindSubmatch(out)
	if m == nil {
		return wrkResult{}, fmt.Errorf("no rate in wrk output:\n%s", out)
	}
	rate, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return wrkResult{}, err
	}
	res := wrkResult{rate: rate, p50: "?", p99: "?"}
	if m := reP50.FindSubmatch(out); m != nil {
		res.p50 = string(m[1])
	}
	if m := reP99.FindSubmatch(out); m != nil {
		res.p99 = string(m[1])
	}
	return res, nil
}

// stack starts the benchmarked stack and checks one submission, so that a
// broken stack fails here, not in wrk.
func stack(dir, dbURL, role string) (*benchstack.Stack, error) {
	st, err := benchstack.Start(context.Background(), dir, dbURL, role)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest(http.MethodPost, st.URL+"/run-task/demo/development/echo", strings.NewReader(`{"message":"hi"}`))
	req.Header.Set("Authorization", "Bearer "+benchstack.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		st.Close()
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !bytes.Contains(body, []byte(`"name"`)) {
		st.Close()
		return nil, fmt.Errorf("POST /run-task: %d %s", resp.StatusCode, body)
	}
	return st, nil
}

// freshDatabase creates an empty database beside base's and returns its
// URL and a function that drops it.
func freshDatabase(base string) (string, func(), error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("TASKGATE_TEST_POSTGRES_URL: %w", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "taskgate_benchwrk_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}
