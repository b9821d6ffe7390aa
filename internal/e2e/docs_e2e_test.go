//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/taskgate/taskgate/internal/freeport"
)

// TestDocsRenderOffline starts the quickstart, opens /docs in headless
// Chromium with background networking off, and checks that the rendered
// page lists the run-task operation, that every request the page made went
// to the server itself, and that no Content-Security-Policy violation or
// script error was reported. It saves a screenshot under artifacts/.
func TestDocsRenderOffline(t *testing.T) {
	ctx := newChromium(t, 90*time.Second)
	base := startQuickstart(t)

	pages := watch(t, ctx)
	// Swagger UI names each operation's block operations-<tag>-<operationId>.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/docs"), chromedp.WaitVisible("#operations-task-run-task")); err != nil {
		t.Fatalf("render /docs: %v", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text("#swagger-ui"))
	if err != nil {
		t.Fatalf("read the rendered page: %v", err)
	}
	for _, want := range []string{"/run-task/{project}/{domain}/{name}", "/run/{name}", "/health", "taskgate quickstart"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered docs lack %q", want)
		}
	}
	saveScreenshot(t, ctx, "docs")

	if n := pages.onlyOrigins(t, base); n < 4 {
		t.Errorf("page made %d requests; expected the page, its assets and openapi.json", n)
	}
}

// startQuickstart builds and starts examples/quickstart on a free loopback
// port with a fresh data folder, and returns its base URL.
func startQuickstart(t *testing.T, env ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "quickstart")
	build := exec.Command("go", "build", "-o", bin, "../../examples/quickstart")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build quickstart: %v", err)
	}
	addr := freeport.Addr(t)

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "TASKGATE_ADDR="+addr, "TASKGATE_DATA_DIR="+t.TempDir(), "TASKGATE_AUTH_TOKENS=", "TASKGATE_DATABASE_URL=", "TASKGATE_METRICS_ADDR=")
	cmd.Env = append(cmd.Env, env...)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Log("quickstart: " + sc.Text())
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(fmt.Errorf("quickstart did not answer /health at %s", base))
	return ""
}

func allocator(t *testing.T, chromium string, width, height int) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		// The console's tabs poll while another tab is in front.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.WindowSize(width, height),
	)
	t.Cleanup(cancel)
	return ctx
}
