package queue

import (
	"context"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

func TestQueueHeaderAllowed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, cred string
		want       bool
	}{
		{"Content-Type", "", true},
		{"accept", "", true},
		{"Accept-Language", "", true},
		{"X-Custom", "", true},
		{"x-request-id", "", true},
		{"X-Team", "X-Team", false}, // carried this request's credential
		{"Authorization", "", false},
		{"Cookie", "", false},
		{"Proxy-Authorization", "", false},
		{"Modal-Key", "", false},
		{"Accept-Encoding", "", false},
		{"X-Api-Key", "", false},
		{"X-Auth-Token", "", false},
		{"X-Session-Id", "", false},
		{"X-Csrf-Token", "", false},
		{"X-Hub-Signature-256", "", false},
		{"X-Forwarded-For", "", false},
		{"X-Real-Ip", "", false},
		{"X-Queue-Priority", "", false},
		{"X-Queue-Request-Id", "", false},
		{"X-Password", "", false},
	} {
		if got := queueHeaderAllowed(tc.name, tc.cred); got != tc.want {
			t.Errorf("queueHeaderAllowed(%q, %q) = %v, want %v", tc.name, tc.cred, got, tc.want)
		}
	}
}

func TestWithoutParams(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"a=1", "a=1"},
		{"webhook=https://x", ""},
		{"a=1&webhook=x&b=%20&webhook_events_filter=start", "a=1&b=%20"},
		{"web%68ook=x&a", "a"}, // an escaped name is still the parameter
		{"b=2&a=1&b=3", "b=2&a=1&b=3"},
	} {
		if got := withoutParams(tc.in, "webhook", "webhook_events_filter"); got != tc.want {
			t.Errorf("withoutParams(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzWithoutParams checks that the queue's own parameters never reach a
// replay, and that every other part of the query does, in order.
func FuzzWithoutParams(f *testing.F) {
	for _, s := range []string{"", "a=1&webhook=x", "webhook_events_filter=start&&b", "%zz=1&webhook=2", "web%68ook=1;a=2", "webhook=1&"} {
		f.Add(s)
	}
	names := []string{"webhook", "webhook_events_filter"}
	f.Fuzz(func(t *testing.T, raw string) {
		got := withoutParams(raw, names...)
		// The non-empty parts of got are those of raw minus the dropped
		// ones, in order (empty parts carry nothing).
		var want []string
		for part := range strings.SplitSeq(raw, "&") {
			k, _, _ := strings.Cut(part, "=")
			if uk, err := url.QueryUnescape(k); part == "" || err == nil && slices.Contains(names, uk) {
				continue
			}
			want = append(want, part)
		}
		kept := slices.DeleteFunc(strings.Split(got, "&"), func(p string) bool { return p == "" })
		if !slices.Equal(kept, want) {
			t.Fatalf("withoutParams(%q) = %q, want the parts %q", raw, got, want)
		}
		if q, err := url.ParseQuery(got); err == nil {
			for _, n := range names {
				if q.Has(n) {
					t.Fatalf("withoutParams(%q) = %q keeps %s", raw, got, n)
				}
			}
		}
	})
}

// TestHeldCredentialsRecheckedAgainstTheStore: a request whose terminal
// event never reaches this process (here: no subscriber at all) still has
// its held credentials forgotten, once the recheck reads it back over.
func TestHeldCredentialsRecheckedAgainstTheStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	reg := tasks.NewRegistry()
	echo := tasks.MustDefine("demo", "development", "echo", func(_ context.Context, in struct{}) (struct{}, error) { return in, nil }, nil)
	reg.MustRegister(echo)
	// Not started: no scheduler, so the run stays queued until aborted.
	d, err := dispatch.New(dispatch.Config{Store: st, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	q := MustNew(Config{})
	if err := q.bind(&environments.Settings{Name: "app"}, tasks.Resources{}, nil); err != nil {
		t.Fatal(err)
	}
	q.recheck = 10 * time.Millisecond

	run, _, err := d.Submit(ctx, dispatch.SubmitRequest{Task: echo.Definition(), Inputs: []byte(`{}`),
		Caller: middleware.Identity{Subject: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	ref := q.holdCredentials("alice", middleware.Credentials{Source: middleware.SourceBearer, Value: "alice-token"})
	q.track(d, run.Name, ref, 0)
	time.Sleep(50 * time.Millisecond) // a few rechecks of a queued run: kept
	if held := heldCount(q); held != 3 {
		t.Fatalf("%d entries held while the request waits, want 3 (credentials, run, recheck)", held)
	}
	if _, err := d.Abort(ctx, run.Name, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for heldCount(q) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the credentials of a request that ended are still held")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// heldCount is how many entries q holds for requests, in all its maps.
func heldCount(q *Queue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.creds) + len(q.refs) + len(q.checks)
}
