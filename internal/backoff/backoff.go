package backoff

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultMin   = 100 * time.Millisecond
	DefaultMax   = 5 * time.Second
	DefaultEvery = 30 * time.Second
)

// Config configures a Failures. The zero value works.
type Config struct {
	// Logger receives the lines; nil means slog.Default().
	Logger *slog.Logger
	// Msg names what fails, e.g. "record bindings": the message of the
	// first line, and the prefix of the others.
	Msg string
	// Min is the wait after the first failure, doubled after each further
	// one up to Max. Zero means DefaultMin and DefaultMax.
	Min, Max time.Duration
	// Every is the least time between two lines; zero means DefaultEvery.
	Every time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand returns numbers in [0, 1) for jitter; nil means math/rand/v2.
	Rand func() float64
}

// Failures tracks one failing operation. It is safe for concurrent use:
// several goroutines doing the same operation share its count and wait.
type Failures struct {
	cfg Config

	mu      sync.Mutex
	failing bool
	logged  bool // this episode's first line was written
	errs    int  // failures since the episode began
	since   time.Time
	lastLog time.Time
	retryAt time.Time
}

// New returns a Failures with cfg's defaults filled in.
func New(cfg Config) *Failures {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Min <= 0 {
		cfg.Min = DefaultMin
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	cfg.Max = max(cfg.Max, cfg.Min)
	if cfg.Every <= 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	return &Failures{cfg: cfg}
}

// Fail records a failure and returns how long to wait before the next try:
// Min doubled for each failure since the last success, capped at Max, of
// which the second half is drawn at random (so processes that failed
// together do not retry together, and none retries sooner than half the
// step). It logs err, with attrs, when it is the first failure since the
// last success, or when the last line is older than Every; a failure
// within Every of the last line (a flapping operation) waits for the next
// line to be counted.
func (f *Failures) Fail(ctx context.Context, err error, attrs ...slog.Attr) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.cfg.Now()
	if !f.failing {
		f.failing, f.logged, f.errs, f.since = true, false, 0, now
	}
	f.errs++
	step := f.cfg.Max
	if n := f.errs - 1; n < 32 {
		step = min(f.cfg.Max, f.cfg.Min<<n)
	}
	wait := step/2 + time.Duration(f.cfg.Rand()*float64(step/2))
	f.retryAt = now.Add(wait)

	quiet := !f.lastLog.IsZero() && now.Sub(f.lastLog) < f.cfg.Every
	switch {
	case quiet:
		return wait
	case !f.logged:
		attrs = append(attrs, slog.String("err", err.Error()))
		if f.errs > 1 {
			attrs = append(attrs, slog.Int("errors", f.errs), slog.Time("since", f.since))
		}
		f.cfg.Logger.LogAttrs(ctx, slog.LevelError, f.cfg.Msg, attrs...)
	default:
		attrs = append(attrs, slog.Int("errors", f.errs), slog.Time("since", f.since), slog.String("err", err.Error()))
		f.cfg.Logger.LogAttrs(ctx, slog.LevelError, f.cfg.Msg+": still failing", attrs...)
	}
	f.logged, f.lastLog = true, now
	return wait
}

// OK records a success. After logged failures it logs the recovery, with
// the number of errors and how long they lasted, and resets the wait. A
// run of failures that ended before its first line was due is not logged.
func (f *Failures) OK(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failing {
		return
	}
	now := f.cfg.Now()
	f.failing, f.retryAt = false, time.Time{}
	if f.logged {
		f.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, f.cfg.Msg+": recovered",
			slog.Int("errors", f.errs), slog.Duration("after", now.Sub(f.since)))
		f.lastLog = now
	}
}

// Report calls OK when err is nil and Fail otherwise, and returns the
// wait Fail returned (zero after a success).
func (f *Failures) Report(ctx context.Context, err error, attrs ...slog.Attr) time.Duration {
	if err == nil {
		f.OK(ctx)
		return 0
	}
	return f.Fail(ctx, err, attrs...)
}

// Waiting reports whether the wait after the last failure still runs: a
// periodic loop skips its turn while it does.
func (f *Failures) Waiting() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failing && f.cfg.Now().Before(f.retryAt)
}

// Sleep waits d, or until ctx is done; it reports whether the whole wait
// passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
