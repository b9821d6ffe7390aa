//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
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

// Static tokens of the console tests: alice is in the admin group, bob
// is not. Each browser signs in with its token on /auth/login's page.
const (
	aliceToken = "alice-console-token-0123456789"
	bobToken   = "bob-console-token-0123456789"
	cookieName = "taskgate_session"
)

// TestConsole drives the console of the quickstart (tokens for alice and
// bob, a declared A100:2 inventory) in headless Chromium: a run started
// from the task form shows up and succeeds in the list without reload; a
// train run's GPU shows on the nodes page and its progress and log lines
// arrive live; a sleep run is aborted from its page; bob gets 404 for
// alice's run; a browser without credentials is sent to sign in; and no
// page requested anything from another origin. Each step saves a
// screenshot under TASKGATE_E2E_ARTIFACTS (else a temporary folder).
func TestConsole(t *testing.T) {
	chromium := os.Getenv("TASKGATE_E2E_CHROMIUM")
	if chromium == "" {
		t.Skip("TASKGATE_E2E_CHROMIUM is unset: run through `make e2e`, which installs chromium")
	}
	base := startQuickstart(t,
		"TASKGATE_AUTH_TOKENS="+aliceToken+"=alice:admins,"+bobToken+"=bob",
		"TASKGATE_NODE_GPUS=A100:2")
	rec := &requests{}
	alice := newBrowser(t, chromium, base, aliceToken, rec)

	t.Run("echo from the task form reaches succeeded in the list without reload", func(t *testing.T) {
		list := alice.tab(t)
		do(t, list, chromedp.Navigate(base+"/console/runs"), chromedp.WaitVisible("#live"),
			chromedp.Evaluate[chromedp.Void](`window.notReloaded = true; undefined`))
		form := alice.tab(t)
		do(t, form, chromedp.Navigate(base+"/console/tasks"),
			chromedp.WaitVisible(`form[data-task="demo/development/echo"]`),
			chromedp.SendKeys(`#demo-development-echo-message`, "hello console"),
			chromedp.Click(`form[data-task="demo/development/echo"] button[type=submit]`),
			chromedp.WaitVisible(`form[data-task="demo/development/echo"] .result a`))
		name := value(t, form, chromedp.Text(`form[data-task="demo/development/echo"] .result a`))
		if name == "" {
			t.Fatal("the form showed no run name")
		}
		// The API's 422 shows at the field it names, and starts no run.
		do(t, form, chromedp.SendKeys(`#demo-development-sleep-seconds`, "-5"),
			chromedp.Click(`form[data-task="demo/development/sleep"] button[type=submit]`))
		value(t, form, chromedp.Poll[bool](`document.querySelector('[data-task="demo/development/sleep"] [data-field="seconds"] .error').textContent !== ''`,
			chromedp.WithPollingTimeout(10*time.Second)))
		if v := value(t, form, chromedp.AttributeValue(`#demo-development-sleep-seconds`, "aria-invalid")); v.Value != "true" {
			t.Errorf("the bad field is not marked invalid: %+v", v)
		}
		saveScreenshot(t, form, "console-tasks-422")
		do(t, list, chromedp.WaitVisible(`tr[data-name="`+name+`"][data-phase="succeeded"]`))
		if !value(t, list, chromedp.Evaluate[bool](`window.notReloaded === true`)) {
			t.Error("the runs page was reloaded")
		}
		saveScreenshot(t, list, "console-runs")
	})

	t.Run("the created-within filter asks the API for that window", func(t *testing.T) {
		name := startRun(t, base, aliceToken, "echo", `{"message":"recent"}`)
		tab := alice.tab(t)
		opened := time.Now()
		do(t, tab, chromedp.Navigate(base+"/console/runs?since=900"), chromedp.WaitVisible(`tr[data-name="`+name+`"]`))
		if v := value(t, tab, chromedp.Value(`#f-since`)); v != "900" {
			t.Errorf("the filter shows %q, want the 15 minutes of the page's address", v)
		}
		// The page's GET /runs carries the window's start, 15 minutes
		// before the page asked: the server filters, not the page.
		var starts []time.Time
		rec.mu.Lock()
		for _, raw := range rec.urls {
			if u, err := url.Parse(raw); err == nil && u.Path == "/runs" && u.Query().Has("created_after") {
				at, err := time.Parse(time.RFC3339Nano, u.Query().Get("created_after"))
				if err != nil {
					t.Errorf("created_after of %s: %v", raw, err)
				}
				starts = append(starts, at)
			}
		}
		rec.mu.Unlock()
		if len(starts) == 0 {
			t.Fatal("no GET /runs with created_after")
		}
		// The page computes the start after it opened: at most 900 s
		// before, less by however long the page took to ask.
		if got := opened.Sub(starts[0]); got < 840*time.Second || got > 900*time.Second {
			t.Errorf("the window starts %v before the page opened, want 15 minutes", got)
		}
	})

	t.Run("a train run on A100:2 shows its GPU, progress and logs live", func(t *testing.T) {
		name := startRun(t, base, aliceToken, "train", `{"epochs":4,"seconds":8}`)
		tab := alice.tab(t)
		do(t, tab, chromedp.Navigate(base+"/console/run/"+name),
			chromedp.WaitVisible(`#logs .line.stream-stdout`),
			chromedp.WaitVisible(`#logs .line.stream-log`))
		value(t, tab, chromedp.Poll[bool](`document.getElementById('progress').value > 0`, chromedp.WithPollingTimeout(20*time.Second)))
		progress := value(t, tab, chromedp.Text(`#progress-text`))
		if !strings.Contains(progress, "epoch") {
			t.Errorf("progress text %q names no epoch", progress)
		}
		saveScreenshot(t, tab, "console-run")
		do(t, tab, chromedp.Navigate(base+"/console/nodes"), chromedp.WaitVisible(`tr[data-run="`+name+`"]`))
		held := value(t, tab, chromedp.AttributeValue(`tr[data-run="`+name+`"]`, "data-type")).Value
		if !strings.HasPrefix(held, "A100") {
			t.Errorf("the run holds a %q, want an A100", held)
		}
		saveScreenshot(t, tab, "console-nodes")
	})

	var sleepRun string
	t.Run("abort a sleep run", func(t *testing.T) {
		sleepRun = startRun(t, base, aliceToken, "sleep", `{"seconds":120}`)
		tab := alice.tab(t)
		do(t, tab, chromedp.Navigate(base+"/console/run/"+sleepRun),
			chromedp.WaitVisible(`#abort:not([hidden])`),
			chromedp.Click(`#abort`),
			chromedp.WaitVisible(`#summary[data-phase="aborted"]`))
		saveScreenshot(t, tab, "console-aborted")
	})

	t.Run("a second user gets 404 for the first user's run", func(t *testing.T) {
		if sleepRun == "" {
			t.Skip("no run of alice's")
		}
		bob := newBrowser(t, chromium, base, bobToken, rec)
		tab := bob.tab(t)
		do(t, tab, chromedp.Navigate(base+"/console/run/"+sleepRun))
		h1 := value(t, tab, chromedp.Text("h1"))
		if h1 != "Not found" {
			t.Errorf("bob sees %q on alice's run page", h1)
		}
		if got := status(t, base+"/console/run/"+sleepRun, bobToken); got != http.StatusNotFound {
			t.Errorf("bob's GET of alice's run page: %d, want 404", got)
		}
		saveScreenshot(t, tab, "console-404")
	})

	t.Run("a browser without credentials is sent to sign in", func(t *testing.T) {
		anon := newBrowser(t, chromium, base, "", rec)
		tab := anon.tab(t)
		do(t, tab, chromedp.Navigate(base+"/console/queue"))
		at := value(t, tab, chromedp.Location())
		if want := base + "/auth/login?next=%2Fconsole%2Fqueue"; at != want {
			t.Errorf("landed on %s, want %s", at, want)
		}
	})

	t.Run("the console reaches no other origin", func(t *testing.T) {
		// Three one-GPU runs on two A100s: the third waits, with a reason.
		var trains []string
		for range 3 {
			trains = append(trains, startRun(t, base, aliceToken, "train", `{"epochs":20,"seconds":40}`))
		}
		startRun(t, base, bobToken, "echo", `{"message":"bob's"}`)
		tab := alice.tab(t)
		do(t, tab, chromedp.Navigate(base+"/console/queue"), chromedp.WaitVisible(`#waiting tr[data-name="`+trains[2]+`"]`))
		saveScreenshot(t, tab, "console-queue")
		for _, p := range []string{"/console/runs?scope=all", "/console/nodes", "/console/charts", "/console/tasks"} {
			do(t, tab, chromedp.Navigate(base+p), chromedp.WaitVisible("#main"), chromedp.Sleep(2*time.Second))
			saveScreenshot(t, tab, "console-"+strings.NewReplacer("/console/", "", "?scope=", "-").Replace(p)+"-busy")
		}
		rec.check(t, base)
	})

	t.Run("signing out sends the browser to sign in, and the session is gone", func(t *testing.T) {
		tab := alice.tab(t)
		do(t, tab, chromedp.Navigate(base+"/console/runs"), chromedp.WaitVisible("form.signout button"),
			chromedp.Click("form.signout button"))
		waitLocation(t, tab, base+"/auth/login?signed_out=1")
		do(t, tab, chromedp.Navigate(base+"/console/runs"))
		if at := value(t, tab, chromedp.Location()); !strings.HasPrefix(at, base+"/auth/login?next=") {
			t.Errorf("after signing out /console/runs landed on %s, want the sign-in page", at)
		}
	})
}

// browser is one headless Chromium with the session cookie set.
type browser struct {
	ctx context.Context
	rec *requests
}

func newBrowser(t *testing.T, chromium, base, token string, rec *requests) *browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(allocator(t, chromium, 1280, 900))
	t.Cleanup(cancel)
	b := &browser{ctx: ctx, rec: rec}
	b.listen(t, ctx)
	if token != "" {
		// Sign in as a person would: the static-token page at /auth/login,
		// which sets a server-side session cookie (never the token itself).
		tab := b.tab(t)
		do(t, tab, chromedp.Navigate(base+"/auth/login?next=/console/runs"), chromedp.WaitVisible("#token"),
			chromedp.SendKeys("#token", token), chromedp.Click("button[type=submit]"))
		waitLocation(t, tab, base+"/console/runs")
		requireSessionCookie(t, tab, base, token)
	}
	return b
}

// tab opens a new tab of the browser, closed with the test.
func (b *browser) tab(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	b.listen(t, ctx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx
}

func (b *browser) listen(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := chromedp.Listen(ctx, b.rec.event); err != nil { // starts the tab
		t.Fatal(err)
	}
	for _, enable := range []cdp.Command[cdp.Empty, cdp.Empty]{log.Enable, runtime.Enable} {
		if _, err := chromedp.Call(ctx, enable, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
	}
}

// requests records every URL the browsers asked for and every error the
// pages reported (CSP violations arrive as log errors).
type requests struct {
	mu       sync.Mutex
	urls     []string
	problems []string
}

func (r *requests) event(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		r.urls = append(r.urls, ev.Request.URL)
	case *runtime.EventExceptionThrown:
		r.problems = append(r.problems, "exception: "+ev.ExceptionDetails.Text)
	case *log.EventEntryAdded:
		// A chart refused to bob (403) or the sign-in page that does not
		// exist yet (404) are answers, not faults of the page.
		if ev.Entry.Level == log.EntryLevelError && ev.Entry.Source != log.EntrySourceNetwork {
			r.problems = append(r.problems, fmt.Sprintf("%s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	}
}

func (r *requests) check(t *testing.T, base string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	host := strings.TrimPrefix(base, "http://")
	if len(r.urls) < 10 {
		t.Errorf("only %d requests recorded: %v", len(r.urls), r.urls)
	}
	for _, raw := range r.urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "data" && u.Scheme != "about" && u.Host != host) {
			t.Errorf("the console reached outside the server: %s", raw)
		}
	}
	t.Logf("%d requests, all to %s", len(r.urls), host)
	for _, p := range r.problems {
		t.Errorf("browser reported: %s", p)
	}
}

func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

func value[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// startRun starts demo/development/<task> through the API as the token's
// owner and returns the run's name.
func startRun(t *testing.T, base, token, task, body string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/run-task/demo/development/"+task, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Name string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start %s: %d %v", task, resp.StatusCode, err)
	}
	return out.Name
}

func status(t *testing.T, u, cookie string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: cookieName, Value: cookie})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
