package systemtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/freeport"
)

// binDir holds the quickstart binary built for this test run; TestMain
// removes it.
var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// quickstart builds ./examples/quickstart once per test run and returns the
// binary's path. The first test that needs it pays for the build.
func quickstart(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "taskgate-systemtest-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "quickstart")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/taskgate/taskgate/examples/quickstart")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build quickstart: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freeAddr returns a loopback address whose port was free a moment ago,
// outside the ephemeral range (see internal/freeport). A restarted server
// reuses it: Go's listeners set SO_REUSEADDR, so the killed process's
// TIME_WAIT sockets do not block the bind.
func freeAddr(t *testing.T) string { return freeport.Addr(t) }

// proc is one quickstart process, restartable on the same address and
// environment. Its stdout and stderr go to one log file across restarts,
// shown when the test fails or runs with -v.
type proc struct {
	t    *testing.T
	name string
	bin  string
	addr string
	args []string
	env  []string
	log  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// newProc prepares a process; vars are TASKGATE_* settings on top of an
// environment cleared of the caller's TASKGATE_* variables. TASKGATE_ADDR
// is set from addr; metrics are off (TASKGATE_METRICS_ADDR's one default
// port would be shared by every process) unless vars set an address.
// Cleanup stops it.
func newProc(t *testing.T, name, bin, addr string, vars map[string]string, args ...string) *proc {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASKGATE_") {
			env = append(env, kv)
		}
	}
	env = append(env, "TASKGATE_ADDR="+addr, "TASKGATE_METRICS_ADDR=")
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	p := &proc{t: t, name: name, bin: bin, addr: addr, args: args, env: env,
		log: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() || testing.Verbose() {
			b, _ := os.ReadFile(p.log)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("--- last log lines of %s (%d starts):\n%s", p.name, p.starts, b)
		}
	})
	return p
}

func (p *proc) base() string { return "http://" + p.addr }

// start runs the process and waits until GET /health answers 200. It
// returns an error rather than failing the test, so a background goroutine
// may call it.
func (p *proc) start(ctx context.Context) error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "=== start %d at %s\n", p.starts+1, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: start: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.starts++
	p.mu.Unlock()

	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was healthy (see its log)", p.name)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := hc.Get(p.base() + "/health")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after 20s: %w", p.name, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mustStart is start for the test goroutine.
func (p *proc) mustStart() {
	p.t.Helper()
	if err := p.start(context.Background()); err != nil {
		p.t.Fatal(err)
	}
}

// kill sends SIGKILL and waits until the process is gone: no deferred
// function, no shutdown hook and no flush runs.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop asks for a graceful stop (SIGTERM), then kills after grace.
func (p *proc) stop(grace time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		p.kill()
	}
}

// client talks to one server as one bearer-token holder.
type client struct {
	base  string
	token string
	hc    *http.Client
}

func newClient(base, token string) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &client{base: base, token: token, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// errStatus is a reply whose status the caller did not expect.
type errStatus struct {
	method, path string
	code         int
	body         string
}

func (e *errStatus) Error() string {
	return fmt.Sprintf("%s %s: status %d: %s", e.method, e.path, e.code, e.body)
}

// call sends a JSON request and decodes a 2xx JSON reply into out (when
// not nil). Transport errors are returned as they are; a non-2xx reply is
// an *errStatus.
func (c *client) call(ctx context.Context, method, path string, body any, hdr map[string]string, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, &errStatus{method: method, path: path, code: resp.StatusCode, body: string(b)}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode %q: %w", method, path, b, err)
		}
	}
	return resp.StatusCode, nil
}

// retryable reports whether a failed request may be sent again: transport
// errors (the server was killed mid-request) and 5xx/429 answers.
func retryable(code int, err error) bool {
	if err == nil {
		return false
	}
	var es *errStatus
	if errors.As(err, &es) {
		return es.code >= 500 || es.code == http.StatusTooManyRequests
	}
	return code == 0
}

// accepted is the body of POST /run-task.
type accepted struct {
	Name  string `json:"name"`
	URL   string `json:"url"`
	Phase string `json:"phase"`
}

// attempt and runStatus are the parts of GET /run/{name} the tests check.
type attempt struct {
	Number int    `json:"number"`
	Node   string `json:"node"`
	Phase  string `json:"phase"`
	Error  string `json:"error"`
}

type runStatus struct {
	Name     string    `json:"name"`
	Task     string    `json:"task"`
	Phase    string    `json:"phase"`
	Done     bool      `json:"done"`
	Attempt  int       `json:"attempt"`
	Attempts []attempt `json:"attempts"`
	Node     string    `json:"node"`
	Error    string    `json:"error"`
	// CreatedAt and FinishedAt are the server's timestamps.
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

type runIO struct {
	Name    string          `json:"name"`
	Inputs  json.RawMessage `json:"inputs"`
	Outputs json.RawMessage `json:"outputs"`
}

// waitAll polls GET /run/{name} until every run is terminal or the
// deadline passes, and returns the last status of each.
func waitAll(ctx context.Context, c *client, names []string, timeout time.Duration) (map[string]runStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	final := make(map[string]runStatus, len(names))
	pending := append([]string(nil), names...)
	for len(pending) > 0 {
		var still []string
		for _, name := range pending {
			var st runStatus
			if _, err := c.call(ctx, http.MethodGet, "/run/"+name, nil, nil, &st); err != nil {
				if ctx.Err() != nil {
					return final, fmt.Errorf("%d runs not terminal after %s (first %s): %w", len(pending), timeout, pending[0], ctx.Err())
				}
				return final, err
			}
			final[name] = st
			if !st.Done {
				still = append(still, name)
			}
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return final, fmt.Errorf("%d runs not terminal after %s (first %s, phase %s)",
				len(pending), timeout, pending[0], final[pending[0]].Phase)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return final, nil
}

// succeededAttempts counts the attempts recorded as succeeded.
func succeededAttempts(st runStatus) int {
	n := 0
	for _, a := range st.Attempts {
		if a.Phase == "succeeded" {
			n++
		}
	}
	return n
}
