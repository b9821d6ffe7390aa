package webhook

import (
	"strings"
	"testing"
	"time"
)

func TestParsePreferWait(t *testing.T) {
	t.Parallel()
	const max = 60 * time.Second
	for prefer, want := range map[string]time.Duration{
		"":                                 0,
		"wait=10":                          10 * time.Second,
		"wait=0.5":                         500 * time.Millisecond,
		`wait="7"`:                         7 * time.Second,
		"respond-async, wait=3":            3 * time.Second,
		"WAIT = 4":                         4 * time.Second,
		"wait=2, wait=50":                  2 * time.Second, // the first counts
		"wait=60":                          max,
		"wait=61":                          max,
		"wait=1e10":                        max,
		"wait=Inf":                         max,
		"wait=+Infinity":                   max,
		"wait=9223372036854775808":         max,
		"wait=" + strings.Repeat("9", 500): max,
		"wait=NaN":                         0,
		"wait=-1":                          0,
		"wait=-Inf":                        0,
		"wait=1e-400":                      0,
		"wait=soon":                        0,
		"wait=":                            0,
		"wait":                             0,
		"respond-async":                    0,
	} {
		if got := parsePreferWait(prefer, max); got != want {
			t.Errorf("parsePreferWait(%q) = %s, want %s", prefer, got, want)
		}
	}
}

// FuzzPreferWait: whatever the header, the wait is between 0 and the
// maximum.
func FuzzPreferWait(f *testing.F) {
	for _, s := range []string{"wait=10", "wait=1e10", "wait=NaN", "wait=-0", `wait="1"; x, wait=Inf`, "wait=0x1p62"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, prefer string) {
		const max = 60 * time.Second
		if got := parsePreferWait(prefer, max); got < 0 || got > max {
			t.Fatalf("parsePreferWait(%q) = %s", prefer, got)
		}
	})
}
