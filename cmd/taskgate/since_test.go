package main

import (
	"testing"
	"time"
)

// FuzzPointInTime: --since and --until values never panic; a value read
// as a duration lies before now, and whatever is read is not after a
// time it was given.
func FuzzPointInTime(f *testing.F) {
	for _, s := range []string{"", "90m", "2h30m", "-1h", "0s", "2026-12-01", "2026-12-01T15:04:05.123Z", "2026-13-01", "9999999999h", "1e9h"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		at, err := pointInTime("--since", v, now)
		if err != nil {
			if !at.IsZero() {
				t.Fatalf("%q: error %v with a time %v", v, err, at)
			}
			return
		}
		if v == "" && !at.IsZero() {
			t.Fatalf("empty gives %v, want no bound", at)
		}
		if _, derr := time.ParseDuration(v); derr == nil && at.After(now) {
			t.Fatalf("%q read as a duration gives %v, after now", v, at)
		}
	})
}
