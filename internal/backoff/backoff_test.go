package backoff_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/internal/backoff"
)

// records keeps what a logger was given, one "LEVEL msg k=v…" per line.
type records struct{ lines []string }

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key != "since" {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		}
		return true
	})
	r.lines = append(r.lines, b.String())
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time      { return c.t }
func (c *fakeClock) Add(d time.Duration) { c.t = c.t.Add(d) }
func newFixture(rnd float64) (*backoff.Failures, *records, *fakeClock) {
	rec := &records{}
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	f := backoff.New(backoff.Config{Logger: slog.New(rec), Msg: "record bindings",
		Min: 100 * time.Millisecond, Max: 5 * time.Second, Every: 30 * time.Second,
		Now: clk.Now, Rand: func() float64 { return rnd }})
	return f, rec, clk
}

// A store that fails for a minute, tried after each wait: three lines in
// all (the first error, still failing after 30 s, the recovery), and
// waits that double up to the cap.
func TestFailuresLogOncePerStateAndBackOff(t *testing.T) {
	ctx := context.Background()
	f, rec, clk := newFixture(0.999)
	full := errors.New("database or disk is full")
	var waits []time.Duration
	for elapsed := time.Duration(0); elapsed < time.Minute; {
		w := f.Fail(ctx, full, slog.String("run", "r1"))
		require.True(t, f.Waiting())
		waits = append(waits, w)
		clk.Add(w)
		elapsed += w
		require.False(t, f.Waiting())
	}
	require.InDelta(t, 100*time.Millisecond, waits[0], float64(time.Millisecond))
	require.InDelta(t, 200*time.Millisecond, waits[1], float64(time.Millisecond))
	require.InDelta(t, 5*time.Second, waits[len(waits)-1], float64(10*time.Millisecond))
	f.OK(ctx)
	n := len(waits)
	require.Equal(t, []string{
		"ERROR record bindings run=r1 err=database or disk is full",
		fmt.Sprintf("ERROR record bindings: still failing run=r1 errors=%d err=database or disk is full", firstPast(waits, 30*time.Second)),
		fmt.Sprintf("INFO record bindings: recovered errors=%d after=%s", n, sum(waits)),
	}, rec.lines)

	// Fails again at once, then recovers: within 30 s of the last line,
	// so not a line; the wait starts over from Min.
	require.InDelta(t, 100*time.Millisecond, f.Fail(ctx, full), float64(time.Millisecond))
	f.OK(ctx)
	require.Len(t, rec.lines, 3)
	require.False(t, f.Waiting())
}

// Half of each step is jitter: never sooner than half the step.
func TestFailuresJitter(t *testing.T) {
	f, _, _ := newFixture(0)
	require.Equal(t, 50*time.Millisecond, f.Fail(context.Background(), errors.New("x")))
	require.Equal(t, 100*time.Millisecond, f.Fail(context.Background(), errors.New("x")))
}

// firstPast is the number of the failure at which the elapsed waits first
// reach d.
func firstPast(waits []time.Duration, d time.Duration) int {
	var t time.Duration
	for i, w := range waits {
		if t >= d {
			return i + 1
		}
		t += w
	}
	return len(waits)
}

func sum(ws []time.Duration) time.Duration {
	var t time.Duration
	for _, w := range ws {
		t += w
	}
	return t
}

func ExampleFailures() {
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "since" || a.Key == "after" {
				return slog.Attr{}
			}
			return a
		},
	}))
	fails := backoff.New(backoff.Config{Logger: log, Msg: "heartbeat"})
	ctx := context.Background()
	for range 1000 {
		fails.Fail(ctx, errors.New("database or disk is full"))
	}
	fails.OK(ctx)
	// Output:
	// level=ERROR msg=heartbeat err="database or disk is full"
	// level=INFO msg="heartbeat: recovered" errors=1000
}
