//go:build soak

package soak

import (
	"context"
	"encoding/json"
	"errors"
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
)

// buildQuickstart builds examples/quickstart into dir, with
// testdata/soakdebug.go added by an overlay (see the package doc), and
// returns the binary's path.
func buildQuickstart(t *testing.T, dir string) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	extra, err := filepath.Abs(filepath.Join("testdata", "soakdebug.go"))
	if err != nil {
		t.Fatal(err)
	}
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {
		filepath.Join(root, "examples", "quickstart", "zz_soakdebug.go"): extra,
	}})
	if err != nil {
		t.Fatal(err)
	}
	overlayFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "quickstart")
	cmd := exec.Command("go", "build", "-overlay", overlayFile, "-o", bin, "./examples/quickstart")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build quickstart: %v\n%s", err, out)
	}
	return bin
}

// proc is the quickstart process, restartable on the same address, data
// directory and environment. stdout and stderr of every start go to one
// log file.
type proc struct {
	bin, addr, debugAddr, log string
	env                       []string

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	instance int
	started  time.Time
	// killing is set while the test kills the process on purpose.
	killing bool
	// onDeath is told of an exit the test did not cause.
	onDeath func(instance int, err error)
}

// newProc prepares the quickstart; vars come on top of an environment
// cleared of the caller's TASKGATE_* variables.
func newProc(bin, addr, debugAddr, log string, vars map[string]string) *proc {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASKGATE_") && !strings.HasPrefix(kv, "SOAK_") {
			env = append(env, kv)
		}
	}
	env = append(env, "TASKGATE_ADDR="+addr, "SOAK_DEBUG_ADDR="+debugAddr)
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return &proc{bin: bin, addr: addr, debugAddr: debugAddr, log: log, env: env}
}

func (p *proc) base() string { return "http://" + p.addr }

// current returns the live instance's number, pid and start time; pid 0
// when no process runs.
func (p *proc) current() (instance, pid int, started time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return p.instance, 0, p.started
	}
	select {
	case <-p.exited:
		return p.instance, 0, p.started
	default:
	}
	return p.instance, p.cmd.Process.Pid, p.started
}

// start runs a new instance and waits until GET /health answers 200.
func (p *proc) start(ctx context.Context) error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	p.mu.Lock()
	n := p.instance + 1
	p.mu.Unlock()
	fmt.Fprintf(f, "=== soak: start of instance %d at %s\n", n, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	// A soak killed by its timeout or by hand leaves no server behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start quickstart: %w", err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.instance, p.started = cmd, exited, n, time.Now()
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		expected, onDeath := p.killing, p.onDeath
		p.mu.Unlock()
		close(exited)
		if !expected && onDeath != nil {
			onDeath(n, err)
		}
	}()

	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("instance %d exited before it was healthy (see %s)", n, p.log)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := hc.Get(p.base() + "/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /health: status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("instance %d not healthy after 30s: %w", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits until the process is gone: no deferred
// function, shutdown hook or flush runs.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.killing = true
	p.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
	p.mu.Lock()
	p.killing = false
	p.mu.Unlock()
}

// stop asks for a graceful stop (SIGTERM) and reports how long the process
// took to exit and with what; after grace it kills.
func (p *proc) stop(grace time.Duration) (time.Duration, error) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.killing = true
	p.mu.Unlock()
	if cmd == nil {
		return 0, nil
	}
	select {
	case <-exited:
		return 0, nil
	default:
	}
	began := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if st := cmd.ProcessState; st != nil && !st.Success() {
			return time.Since(began), fmt.Errorf("exited with %s", st)
		}
		return time.Since(began), nil
	case <-time.After(grace):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return time.Since(began), errors.New("still running after SIGTERM; killed")
	}
}
