//go:build unix

package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/environments/server"
	"github.com/taskgate/taskgate/internal/freeport"
	"github.com/taskgate/taskgate/internal/problem"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int { return freeport.Port(t) }

// startServer creates a server environment, starts it through the
// OnStart hook an App would call, and stops it through OnStop at cleanup.
func startServer(t *testing.T, cfg server.Config) (*server.Environment, string) {
	t.Helper()
	env, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := envtest.ServeEnv(t, env, envtest.AppDeps(t))
	s := env.Settings()
	if err := s.OnStart(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.OnStop(context.Background()); err != nil {
			t.Errorf("OnStop: %v", err)
		}
	})
	return env, srv.URL
}

// TestServerEnvironment proxies to real processes: Python's http.server
// and a Go server built from testdata/upstream once for all subtests.
func TestServerEnvironment(t *testing.T) {
	upstream := filepath.Join(t.TempDir(), "upstream")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", upstream, "./testdata/upstream")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build testdata/upstream: %v\n%s", err, out)
	}
	upstreamConfig := func(t *testing.T, name string) server.Config {
		return server.Config{
			Settings: environments.Settings{Name: name},
			Command:  []string{upstream},
			Port:     freePort(t),
		}
	}

	t.Run("python http.server", func(t *testing.T) {
		t.Parallel()
		python, err := exec.LookPath("python3")
		if err != nil {
			t.Skip("python3 not installed")
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello from python"), 0o600); err != nil {
			t.Fatal(err)
		}
		port := freePort(t)
		env, url := startServer(t, server.Config{
			Settings: environments.Settings{Name: "python"},
			Command:  []string{python, "-m", "http.server", strconv.Itoa(port), "--bind", "127.0.0.1", "--directory", dir},
			Port:     port,
		})
		if !env.Running() {
			t.Fatal("Running() is false after Start")
		}
		envtest.Send(t, "GET", url+"/hello.txt", "", "").Expect(t, http.StatusUnauthorized)
		envtest.Send(t, "GET", url+"/hello.txt", envtest.AppAlice, "").Expect(t, http.StatusOK, "hello from python")
		envtest.Send(t, "GET", url+"/missing.txt", envtest.AppAlice, "").Expect(t, http.StatusNotFound)
	})

	t.Run("caller subject, streaming and WebSocket", func(t *testing.T) {
		t.Parallel()
		_, url := startServer(t, upstreamConfig(t, "upstream"))

		envtest.Send(t, "GET", url+"/whoami", envtest.AppAlice, "").Expect(t, http.StatusOK, "alice")
		// A caller cannot pose as someone else through the header.
		req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+envtest.AppBob)
		req.Header.Set(server.SubjectHeader, "alice")
		// A CGI or WSGI server reads an underscored spelling as the same
		// header (HTTP_X_TASKGATE_SUBJECT); Go forwards it as sent.
		req.Header["X_taskgate_subject"] = []string{"alice"}
		req.Header["X_Forwarded_For"] = []string{"6.6.6.6"}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "bob" {
			t.Errorf("upstream saw subject %q, want bob", b)
		}

		// A browser session's cookie is the App's own: the upstream does
		// not get it; other cookies go on as sent.
		session := "tgs_" + strings.Repeat("A", 43)
		req, _ = http.NewRequestWithContext(t.Context(), "GET", url+"/cookies", nil)
		req.Header.Set("Authorization", "Bearer "+envtest.AppAlice)
		req.Header.Set("Cookie", "theme=dark; taskgate_session="+session+"; other="+session+"; lang=en")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "theme=dark; lang=en" {
			t.Errorf("upstream saw cookies %q, want theme=dark; lang=en", b)
		}
		req.Header.Set("Cookie", "theme=dark; lang=en")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "theme=dark; lang=en" {
			t.Errorf("upstream saw cookies %q, want them as sent", b)
		}

		// The first line of a response that never ends must arrive: the
		// proxy flushes instead of buffering.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		req, _ = http.NewRequestWithContext(ctx, "GET", url+"/stream", nil)
		req.Header.Set("Authorization", "Bearer "+envtest.AppAlice)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		resp.Body.Close()
		if err != nil || line != "first\n" {
			t.Fatalf("streamed line %q, %v", line, err)
		}
		cancel()

		wsURL := "ws" + strings.TrimPrefix(url, "http") + "/ws"
		_, resp, err = websocket.DefaultDialer.DialContext(t.Context(), wsURL, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("WebSocket without credentials: %v, %+v", err, resp)
		}
		conn, _, err := websocket.DefaultDialer.DialContext(t.Context(), wsURL,
			http.Header{"Authorization": {"Bearer " + envtest.AppAlice}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, msg := range []string{"one", "two", strings.Repeat("x", 100_000)} {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := conn.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "echo: "+msg {
				t.Fatalf("echo %.40q, want %.40q", got, "echo: "+msg)
			}
		}
	})

	t.Run("crashing server is restarted", func(t *testing.T) {
		t.Parallel()
		cfg := upstreamConfig(t, "crashy")
		// Long enough for the test to see the server down.
		cfg.RestartBackoff = time.Second
		env, url := startServer(t, cfg)

		first := envtest.Send(t, "GET", url+"/pid", envtest.AppAlice, "")
		first.Expect(t, http.StatusOK)
		// The crash kills the connection: 502 from the proxy.
		envtest.Send(t, "GET", url+"/crash", envtest.AppAlice, "").Expect(t, http.StatusBadGateway)

		sawDown := false
		deadline := time.Now().Add(30 * time.Second)
		for {
			if time.Now().After(deadline) {
				t.Fatal("the server never came back")
			}
			r := envtest.Send(t, "GET", url+"/pid", envtest.AppAlice, "")
			if r.Status == http.StatusServiceUnavailable {
				sawDown = true
				if r.Header.Get("Content-Type") != problem.ContentType || r.Header.Get("Retry-After") == "" {
					t.Fatalf("503 without problem+json or Retry-After: %v", r.Header)
				}
			}
			if r.Status == http.StatusOK {
				if r.Body == first.Body {
					t.Fatalf("still pid %s after the crash", r.Body)
				}
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !sawDown {
			t.Error("never answered 503 while the server was down")
		}
		if !env.Running() {
			t.Error("Running() is false after the restart")
		}
	})

	t.Run("a dead server is noticed although a child holds its output", func(t *testing.T) {
		t.Parallel()
		cfg := upstreamConfig(t, "orphaning")
		// The shell leaves a sleeping child that holds stdout and stderr,
		// then becomes the server.
		children := filepath.Join(t.TempDir(), "children")
		cfg.Command = []string{"sh", "-c", `sleep 600 & echo $! >> "$CHILDREN"; exec "$UPSTREAM"`}
		cfg.Env = []string{"CHILDREN=" + children, "UPSTREAM=" + upstream}
		// A supervisor that waited for the pipes to close would notice
		// the death only when the grace period ends (exec's WaitDelay).
		cfg.StopGracePeriod = 2 * time.Minute
		cfg.RestartBackoff = 200 * time.Millisecond
		env, url := startServer(t, cfg)

		first := envtest.Send(t, "GET", url+"/pid", envtest.AppAlice, "")
		first.Expect(t, http.StatusOK)
		pid, err := strconv.Atoi(first.Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second) // far below the grace period
		for {
			if time.Now().After(deadline) {
				t.Fatal("the server did not come back within 30 s of its death")
			}
			r := envtest.Send(t, "GET", url+"/pid", envtest.AppAlice, "")
			if r.Status == http.StatusOK && r.Body != first.Body {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		pids := childPIDs(t, children)
		if len(pids) != 2 {
			t.Fatalf("children %v, want one per run", pids)
		}
		waitGone(t, pids[0], "the dead server's leftover child")
		if err := env.Settings().OnStop(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitGone(t, pids[1], "the stopped server's child")
	})

	t.Run("SIGKILL after the grace period", func(t *testing.T) {
		t.Parallel()
		cfg := upstreamConfig(t, "stubborn")
		cfg.Env = []string{"UPSTREAM_IGNORE_TERM=1"}
		cfg.StopGracePeriod = 200 * time.Millisecond
		env, err := server.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := envtest.ServeEnv(t, env, envtest.AppDeps(t))
		if err := env.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := env.Start(t.Context()); !errors.Is(err, server.ErrStarted) {
			t.Fatalf("second Start: %v", err)
		}
		pid, err := strconv.Atoi(envtest.Send(t, "GET", srv.URL+"/pid", envtest.AppAlice, "").Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Stop(t.Context()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("process %d still exists after Stop: %v", pid, err)
		}
		envtest.Send(t, "GET", srv.URL+"/pid", envtest.AppAlice, "").Expect(t, http.StatusServiceUnavailable)
		if err := env.Stop(t.Context()); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
	})

	t.Run("Stop whose context ends kills at once", func(t *testing.T) {
		t.Parallel()
		cfg := upstreamConfig(t, "impatient")
		cfg.Env = []string{"UPSTREAM_IGNORE_TERM=1"}
		cfg.StopGracePeriod = time.Hour
		env, err := server.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if err := env.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop: %v, want DeadlineExceeded", err)
		}
		if env.Running() {
			t.Fatal("still running after Stop")
		}
		// Stopped servers start again.
		if err := env.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_ = env.Stop(ctx)
	})

	t.Run("1 GiB upload streams through the proxy", func(t *testing.T) {
		if testing.Short() {
			t.Skip("1 GiB upload: skipped in -short")
		}
		// Not parallel: the RSS figure is the process's, shared by all tests.
		cfg := upstreamConfig(t, "uploads")
		cfg.Limits.MaxBodyBytes = environments.MaxBodyLimit
		_, url := startServer(t, cfg)

		const size = 1 << 30
		runtime.GC()
		before := resetPeakRSS(t)
		req, _ := http.NewRequestWithContext(t.Context(), "POST", url+"/discard", io.LimitReader(zeros{}, size))
		req.ContentLength = size
		req.Header.Set("Authorization", "Bearer "+envtest.AppAlice)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != strconv.Itoa(size) {
			t.Fatalf("upload: %d %s", resp.StatusCode, b)
		}
		grew := peakRSS(t) - before
		t.Logf("peak RSS grew by %.1f MiB for a 1 GiB upload through auth, limits and the proxy", float64(grew)/(1<<20))
		if grew >= 100<<20 {
			t.Errorf("peak RSS grew by %d bytes (>= 100 MiB)", grew)
		}
	})

	t.Run("body over the limit is 413 through the proxy", func(t *testing.T) {
		t.Parallel()
		cfg := upstreamConfig(t, "small-uploads")
		cfg.Limits.MaxBodyBytes = 1000
		_, url := startServer(t, cfg)
		for _, declared := range []bool{true, false} {
			body := io.LimitReader(zeros{}, 2000)
			if !declared {
				body = chunked{body}
			}
			req, _ := http.NewRequestWithContext(t.Context(), "POST", url+"/discard", body)
			if declared {
				req.ContentLength = 2000
			}
			req.Header.Set("Authorization", "Bearer "+envtest.AppAlice)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("declared length %v: status %d, want 413", declared, resp.StatusCode)
			}
		}
	})
}

func TestServerEnvironmentStartFails(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	busyPort := busy.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name    string
		command []string
		port    int
		want    error
	}{
		{"exits at once", []string{"sh", "-c", "exit 7"}, 0, server.ErrStartup},
		{"never listens", []string{"sleep", "30"}, 0, server.ErrStartup},
		{"no such program", []string{"/nonexistent/server"}, 0, server.ErrStartup},
		{"port taken", []string{"sleep", "30"}, busyPort, server.ErrPortInUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			port := tt.port
			if port == 0 {
				port = freePort(t)
			}
			env, err := server.New(server.Config{
				Settings:       environments.Settings{Name: "failing"},
				Command:        tt.command,
				Port:           port,
				StartupTimeout: 300 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			srv := envtest.ServeEnv(t, env, envtest.AppDeps(t))
			if err := env.Start(t.Context()); !errors.Is(err, tt.want) {
				t.Fatalf("Start: %v, want %v", err, tt.want)
			}
			r := envtest.Send(t, "GET", srv.URL+"/", envtest.AppAlice, "")
			r.Expect(t, http.StatusServiceUnavailable)
			if r.Header.Get("Content-Type") != problem.ContentType {
				t.Errorf("503 is not problem+json: %v", r.Header)
			}
			if err := env.Stop(t.Context()); err != nil {
				t.Errorf("Stop of a server that never started: %v", err)
			}
		})
	}
}

func TestNewServerEnvironmentRefuses(t *testing.T) {
	t.Parallel()
	ok := server.Config{Settings: environments.Settings{Name: "s"}, Command: []string{"x"}, Port: 8000}
	tests := []struct {
		name   string
		change func(c *server.Config)
		want   string
	}{
		{"no command", func(c *server.Config) { c.Command = nil }, "Command"},
		{"empty program", func(c *server.Config) { c.Command = []string{""} }, "Command"},
		{"no port", func(c *server.Config) { c.Port = 0 }, "Port"},
		{"port too large", func(c *server.Config) { c.Port = 70000 }, "Port"},
		{"bad env entry", func(c *server.Config) { c.Env = []string{"NOEQUALS"} }, "Env"},
		{"negative timeout", func(c *server.Config) { c.StartupTimeout = -time.Second }, "negative"},
		{"bad name", func(c *server.Config) { c.Name = "Not Valid" }, "DNS label"},
		{"bad label", func(c *server.Config) { c.Label = "a--b" }, "invalid URL label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tt.change(&cfg)
			_, err := server.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewServerEnvironment: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	// The defaults wire the lifecycle.
	env := server.MustNew(ok)
	if env.Settings().OnStart == nil || env.Settings().OnStop == nil {
		t.Fatal("OnStart/OnStop are not set to Start/Stop")
	}
}

// childPIDs reads the process ids the test's server script appended to
// path, one a line.
func childPIDs(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitGone fails the test unless process pid is gone within 10 s. A zombie
// counts as gone: an orphan is reaped by whoever adopted it, which in a
// container may be nobody.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) is still running", what, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processAlive lists the process through /proc where there is one, since
// signal 0 also reaches a zombie.
func processAlive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if _, statErr := os.Stat("/proc/self/stat"); statErr == nil {
			return false
		}
		return syscall.Kill(pid, 0) == nil
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// zeros is an endless source of zero bytes that costs no memory.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// chunked hides the length of its reader so the client sends it chunked.
type chunked struct{ io.Reader }

// resetPeakRSS makes VmHWM start again from the current RSS (Linux's
// clear_refs "5"), so that what an earlier test allocated does not hide
// this one's peak. It returns the peak to measure from.
func resetPeakRSS(t *testing.T) int64 {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak RSS (%v); measuring from the lifetime peak", err)
	}
	return procStatus(t, "VmHWM:")
}

// peakRSS reads VmHWM, the process's peak resident set, in bytes.
func peakRSS(t *testing.T) int64 { return procStatus(t, "VmHWM:") }

// procStatus reads a size field of /proc/self/status, in bytes.
func procStatus(t *testing.T, field string) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no /proc/self/status on this system")
	}
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// BenchmarkServerProxy measures a GET through a ServerEnvironment (proxy
// only, no auth) against the same GET sent to the upstream directly, in
// alternating blocks of the same run: ns/op is proxied, direct_ns/op the
// baseline, overhead_ns/op the difference.
func BenchmarkServerProxy(b *testing.B) {
	upstream := filepath.Join(b.TempDir(), "upstream")
	build := exec.CommandContext(b.Context(), "go", "build", "-o", upstream, "./testdata/upstream")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build testdata/upstream: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	env := server.MustNew(server.Config{
		Settings: environments.Settings{Name: "bench"},
		Command:  []string{upstream},
		Port:     port,
	})
	h, err := env.Build(&environments.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := env.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer env.Stop(context.Background())
	proxy := httptest.NewServer(h)
	defer proxy.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(url string, n int) time.Duration {
		start := time.Now()
		for range n {
			resp, err := client.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		return time.Since(start)
	}
	direct := "http://127.0.0.1:" + strconv.Itoa(port) + "/pid"
	get(direct, 10)
	get(proxy.URL+"/pid", 10)
	const block = 100
	var base, proxied time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += block {
		n := min(block, b.N-done)
		base += get(direct, n)
		proxied += get(proxy.URL+"/pid", n)
	}
	b.ReportMetric(float64(proxied.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "direct_ns/op")
	b.ReportMetric(float64((proxied-base).Nanoseconds())/float64(b.N), "overhead_ns/op")
}
