package environments

import (
	"net/url"
	"slices"
	"strings"
	"testing"
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
