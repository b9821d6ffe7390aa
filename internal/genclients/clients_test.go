package genclients_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/genclients/api"
)

const token = "genclients-token-0123456789"

// TestGeneratedClientsRunEcho starts the quickstart as a real process on a
// free loopback port and runs demo/development/echo through each generated
// client, with a typed body, reading typed outputs.
func TestGeneratedClientsRunEcho(t *testing.T) {
	base := startQuickstart(t)

	t.Run("go (oapi-codegen)", func(t *testing.T) {
		c, err := api.NewClientWithResponses(base, api.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+token)
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		wait := "wait=20"
		resp, err := c.RunDemoDevelopmentEchoWithResponse(ctx, &api.RunDemoDevelopmentEchoParams{Prefer: &wait},
			api.EchoInput{Message: "hi from Go"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.JSON200 == nil || resp.JSON200.Outputs == nil {
			t.Fatalf("status %d, body %s: want 200 with outputs", resp.StatusCode(), resp.Body)
		}
		if got := resp.JSON200.Outputs.Message; got != "hi from Go" {
			t.Fatalf("outputs.message = %q", got)
		}
		if resp.JSON200.Phase != api.DemoDevelopmentEchoRunPhaseSucceeded {
			t.Fatalf("phase = %q", resp.JSON200.Phase)
		}

		// Errors come typed too: a body too long for the input schema is 422.
		bad, err := c.RunDemoDevelopmentEchoWithResponse(ctx, nil, api.EchoInput{Message: strings.Repeat("x", 10001)})
		if err != nil {
			t.Fatal(err)
		}
		if bad.ApplicationproblemJSON422 == nil || bad.ApplicationproblemJSON422.Status == nil ||
			*bad.ApplicationproblemJSON422.Status != http.StatusUnprocessableEntity {
			t.Fatalf("status %d, body %s: want a typed 422", bad.StatusCode(), bad.Body)
		}
	})

	t.Run("typescript (openapi-typescript + openapi-fetch)", func(t *testing.T) {
		script := filepath.Join("ts", "dist", "echo.js")
		if _, err := os.Stat(script); err != nil {
			t.Fatalf("%s is missing: make clients builds it", script)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", script)
		cmd.Env = append(os.Environ(), "TASKGATE_URL="+base, "TASKGATE_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("node %s: %v\n%s", script, err, out)
		}
		if !strings.Contains(string(out), "outputs.message: hi from TypeScript") {
			t.Fatalf("node %s printed:\n%s", script, out)
		}
	})
}

// startQuickstart builds examples/quickstart and runs it over a fresh data
// folder on a free loopback port until the test ends.
func startQuickstart(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "quickstart")
	build := exec.Command("go", "build", "-o", bin, "github.com/taskgate/taskgate/examples/quickstart")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASKGATE_") {
			env = append(env, kv)
		}
	}
	env = append(env, "TASKGATE_ADDR="+addr, "TASKGATE_METRICS_ADDR=", "TASKGATE_DATA_DIR="+filepath.Join(dir, "data"),
		"TASKGATE_AUTH_TOKENS="+token+"=alice", "TASKGATE_NODE_GPUS=T4:1")
	logPath := filepath.Join(dir, "quickstart.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("quickstart log:\n%s", b)
		}
	})

	base := "http://" + addr
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := hc.Get(base + "/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-exited:
			t.Fatal("the quickstart exited before it was healthy")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal(fmt.Errorf("the quickstart is not healthy after 30s: %w", err))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
