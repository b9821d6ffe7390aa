//go:build soak

package soak

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/freeport"
	"github.com/taskgate/taskgate/internal/stdwebhook"
)

// config is the soak's settings (see the package doc).
type config struct {
	duration, restartEvery, grace, drain time.Duration
	rate                                 float64
	workers, followers                   int
}

func loadConfig(t *testing.T) config {
	t.Helper()
	c := config{duration: 10 * time.Minute, restartEvery: 2 * time.Minute, grace: 2 * time.Second,
		drain: 3 * time.Minute, rate: 100, workers: 16, followers: 4}
	durations := map[string]*time.Duration{"SOAK_DURATION": &c.duration, "SOAK_RESTART_EVERY": &c.restartEvery,
		"SOAK_RESTART_GRACE": &c.grace, "SOAK_DRAIN": &c.drain}
	for name, p := range durations {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				t.Fatalf("%s=%q: want a Go duration of 0 or more", name, v)
			}
			*p = d
		}
	}
	ints := map[string]*int{"SOAK_WORKERS": &c.workers, "SOAK_FOLLOWERS": &c.followers}
	for name, p := range ints {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				t.Fatalf("%s=%q: want a whole number of 0 or more", name, v)
			}
			*p = n
		}
	}
	if v := os.Getenv("SOAK_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			t.Fatalf("SOAK_RATE=%q: want operations per second above 0", v)
		}
		c.rate = r
	}
	if c.duration < time.Minute || c.workers < 1 {
		t.Fatalf("SOAK_DURATION must be 1m or more and SOAK_WORKERS 1 or more")
	}
	if c.restartEvery != 0 && c.restartEvery < 40*time.Second {
		t.Fatalf("SOAK_RESTART_EVERY=%s: want 0 (never) or 40s or more, so that each process warms up before its quiet reading", c.restartEvery)
	}
	if c.restartEvery != 0 && c.duration%c.restartEvery != 0 {
		t.Fatalf("SOAK_DURATION=%s is not a multiple of SOAK_RESTART_EVERY=%s: the last process must live as long as the first "+
			"for their figures to compare", c.duration, c.restartEvery)
	}
	return c
}

// sampleWindow is the span of the under-load medians of an instance
// (instanceFigures): two of them and the quiet fit in its life.
func (c config) sampleWindow() time.Duration {
	if c.restartEvery == 0 {
		return 20 * time.Second
	}
	return min(20*time.Second, (c.restartEvery-quietLead)/3)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestSoak is the soak: see the package doc.
func TestSoak(t *testing.T) {
	cfg := loadConfig(t)
	work, err := os.MkdirTemp("", "taskgate-soak-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("artifacts (log, goroutine profiles, summary) in %s", work)
	bin := buildQuickstart(t, work)

	secret := stdwebhook.NewSecret().Encode()
	rcv := newReceiver(secret)
	defer rcv.srv.Close()
	tokens := [2]string{"soak-a-" + randomHex(16), "soak-b-" + randomHex(16)}
	data := filepath.Join(work, "data")
	srv := newProc(bin, freeport.Addr(t), freeport.Addr(t), filepath.Join(work, "quickstart.log"), map[string]string{
		"TASKGATE_DATA_DIR":              data,
		"TASKGATE_AUTH_TOKENS":           tokens[0] + "=soak-a:admins," + tokens[1] + "=soak-b",
		"TASKGATE_NODE_ID":               "soak-node",
		"TASKGATE_WEBHOOK_SECRET":        secret,
		"TASKGATE_WEBHOOK_ALLOW_PRIVATE": "1",
		// Its own port per run, so a quickstart already running (make run,
		// on the default 127.0.0.1:9464) cannot stop the soak's.
		"TASKGATE_METRICS_ADDR": freeport.Addr(t),
	})
	s := &soak{cfg: cfg, srv: srv, win: &windows{}, ends: map[int]time.Time{}}
	srv.onDeath = s.died
	if err := srv.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.kill()
	s.load = newLoad(srv.base(), tokens, rcv, cfg.workers+cfg.followers+4)
	s.sampler = newSampler(srv, filepath.Join(data, "taskgate.db"), s.load.gate.isPaused, 2*time.Second, work)

	s.began = time.Now()
	t.Logf("load for %s at %.0f op/s, %d workers, %d followers; SIGKILL every %s", cfg.duration, cfg.rate,
		cfg.workers, cfg.followers, orNever(cfg.restartEvery))
	s.drive()
	v := s.verify(t)
	stopTook, stopErr := srv.stop(70 * time.Second)
	v.stopTook, v.stopErr = stopTook, stopErr
	v.logs = scanLog(srv.log)

	summary := s.summary(v)
	fmt.Print(summary)
	_ = os.WriteFile(filepath.Join(work, "summary.md"), []byte(summary), 0o600)
	for _, f := range v.failures {
		t.Error(f)
	}
	if !t.Failed() {
		// The database is the bulk of the artifacts; keep the rest.
		_ = os.RemoveAll(data)
	}
}

// soak runs one soak: the load, the restarts, the sampling.
type soak struct {
	cfg     config
	srv     *proc
	load    *load
	sampler *sampler
	win     *windows
	began   time.Time
	// skipped counts paced operations not started: every worker was busy.
	skipped int64

	mu sync.Mutex
	// ends are when each instance stopped serving the load: killed, died,
	// or the load ended.
	ends     map[int]time.Time
	restarts []restart
	deaths   []string
	// quiets are the quiet readings, one per checkpoint.
	quiets []quietFigure
}

// restart is one SIGKILL and the start after it.
type restart struct {
	at       time.Duration // since the load began
	instance int           // the one killed
	age      time.Duration
	down     time.Duration // SIGKILL to /health 200
	err      error
}

// died is told when an instance exits without the test killing it: that
// is a failure, and the process is started again (with no restart window,
// so what failed meanwhile counts).
func (s *soak) died(instance int, err error) {
	s.mu.Lock()
	s.ends[instance] = time.Now()
	s.deaths = append(s.deaths, fmt.Sprintf("instance %d exited on its own at %s: %v", instance,
		time.Since(s.began).Round(time.Second), err))
	s.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.srv.start(ctx); err != nil {
			s.mu.Lock()
			s.deaths = append(s.deaths, "could not start it again: "+err.Error())
			s.mu.Unlock()
		}
	}()
}

// drive runs the load, the followers, the sampler, the quiets and the
// restarts for the configured duration.
func (s *soak) drive() {
	cfg := s.cfg
	ctx, cancel := context.WithDeadline(context.Background(), s.began.Add(cfg.duration))
	defer cancel()
	var wg sync.WaitGroup
	g := s.load.gate

	sctx, stopSampler := context.WithCancel(context.Background())
	var swg sync.WaitGroup
	swg.Go(func() { s.sampler.run(sctx) })

	tokens := make(chan struct{}, cfg.workers)
	var skipped int64
	wg.Go(func() {
		tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if g.isPaused() {
					continue
				}
				select {
				case tokens <- struct{}{}:
				default:
					skipped++ // every worker is busy: the rate is not met
				}
			}
		}
	})
	total := 0
	for _, o := range mix {
		total += o.weight
	}
	for i := range cfg.workers {
		rng := mrand.New(mrand.NewPCG(uint64(s.began.UnixNano()), uint64(i)))
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-tokens:
				}
				if !g.enter(ctx) {
					return
				}
				n := rng.IntN(total)
				for _, o := range mix {
					if n < o.weight {
						o.run(s.load, ctx, rng)
						break
					}
					n -= o.weight
				}
				g.leave()
			}
		})
	}
	for i := range cfg.followers {
		rng := mrand.New(mrand.NewPCG(uint64(s.began.UnixNano()), uint64(1000+i)))
		wg.Go(func() {
			// The newest run is most often still going; the pause keeps
			// the followers from replaying finished streams back to back.
			for g.enter(ctx) {
				if r := s.load.book.newest(); r != nil {
					s.load.follow(ctx, r)
				}
				g.leave()
				pause(ctx, time.Duration(50+rng.IntN(200))*time.Millisecond)
			}
		})
	}
	wg.Go(func() { s.conduct(ctx) })

	<-ctx.Done()
	s.endInstance()
	wg.Wait()
	stopSampler()
	swg.Wait()
	s.skipped = skipped
}

// endInstance marks the live instance's end of load.
func (s *soak) endInstance() {
	inst, _, _ := s.srv.current()
	s.mu.Lock()
	if _, ok := s.ends[inst]; !ok {
		s.ends[inst] = time.Now()
	}
	s.mu.Unlock()
}

// checkpoints are the moments, since the load began, at which the live
// process is read quietly: before each kill and at the end; without
// restarts, at minute 2 and at the end.
func (c config) checkpoints() []time.Duration {
	if c.restartEvery == 0 {
		return []time.Duration{min(2*time.Minute, c.duration/2), c.duration}
	}
	var out []time.Duration
	for at := c.restartEvery; at <= c.duration; at += c.restartEvery {
		out = append(out, at)
	}
	return out
}

// conduct reads the process quietly before each checkpoint and, at each
// one but the end, SIGKILLs it and starts it again inside a restart
// window.
func (s *soak) conduct(ctx context.Context) {
	for _, at := range s.cfg.checkpoints() {
		if !sleepUntil(ctx, s.began.Add(at-quietLead)) {
			return
		}
		q := s.quiet(ctx)
		s.mu.Lock()
		s.quiets = append(s.quiets, q)
		s.mu.Unlock()
		if s.cfg.restartEvery == 0 || at >= s.cfg.duration || !sleepUntil(ctx, s.began.Add(at)) {
			continue
		}
		s.restart()
	}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(t)):
		return true
	}
}

// restart SIGKILLs the process and starts it again, inside a restart
// window.
func (s *soak) restart() {
	inst, _, started := s.srv.current()
	killed := time.Now()
	w := s.win.open(killed)
	s.mu.Lock()
	s.ends[inst] = killed
	s.mu.Unlock()
	s.srv.kill()
	// Stay down a moment: clients see refused connections too.
	time.Sleep(200 * time.Millisecond)
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := s.srv.start(sctx)
	cancel()
	healthy := time.Now()
	s.win.close(w, healthy.Add(s.cfg.grace))
	s.mu.Lock()
	s.restarts = append(s.restarts, restart{at: killed.Sub(s.began), instance: inst, age: killed.Sub(started),
		down: healthy.Sub(killed), err: err})
	s.mu.Unlock()
}
