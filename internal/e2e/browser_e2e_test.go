//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// newChromium starts headless Chromium (TASKGATE_E2E_CHROMIUM, else the
// test is skipped) with background networking off, so that every request
// it makes is the page's, and returns a tab's context that ends after
// timeout.
func newChromium(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	chromium := os.Getenv("TASKGATE_E2E_CHROMIUM")
	if chromium == "" {
		t.Skip("TASKGATE_E2E_CHROMIUM is unset: run through `make e2e`, which installs chromium")
	}
	allocCtx := allocator(t, chromium, 1280, 2000)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancelTimeout)
	return ctx
}

// saveScreenshot writes a screenshot of the tab as <name>.png under
// TASKGATE_E2E_ARTIFACTS (`make e2e`: artifacts/ at the module's root),
// else a temporary folder: the test's artifact.
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	dir := os.Getenv("TASKGATE_E2E_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// pageLog records what a tab requested and what went wrong in it.
type pageLog struct {
	mu       sync.Mutex
	requests []string
	problems []string
}

func watch(t *testing.T, ctx context.Context) *pageLog {
	t.Helper()
	l := &pageLog{}
	err := chromedp.Listen(ctx, func(ev any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			l.requests = append(l.requests, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			l.problems = append(l.problems, "exception: "+ev.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			// CSP violations and failed loads arrive here as errors;
			// a 401 page's status too, which a sign-in test expects.
			// The browser's own favicon.ico probe of a JSON page is not
			// the page's.
			if ev.Entry.Level == log.EntryLevelError && !strings.Contains(ev.Entry.Text, "status of 401") &&
				!strings.HasSuffix(ev.Entry.URL, "/favicon.ico") {
				l.problems = append(l.problems, fmt.Sprintf("%s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enable log domain: %v", err)
	}
	return l
}

// onlyOrigins fails t for a request to any origin but those given (data:
// URLs aside) and for any problem the browser reported, and returns how
// many requests there were.
func (l *pageLog) onlyOrigins(t *testing.T, origins ...string) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, raw := range l.requests {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "data" && !slices.Contains(origins, u.Scheme+"://"+u.Host) {
			t.Errorf("the page reached outside %v: %s", origins, raw)
		}
	}
	for _, p := range l.problems {
		t.Errorf("browser reported: %s", p)
	}
	return len(l.requests)
}
