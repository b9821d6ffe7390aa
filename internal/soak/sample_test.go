//go:build soak

package soak

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sample is one reading of the live process.
type sample struct {
	instance int
	at       time.Time
	age      time.Duration // since the instance started
	rssKiB   int64
	threads  int64
	fds      int64
	sockets  int64 // of fds
	// poolFDs are the database's and its WAL's descriptors: two per
	// connection of the SQLite store's pools (see dbPoolBound).
	poolFDs int64
	// goroutines is -1 when the debug listener did not answer.
	goroutines int64
	// paused: taken while the load was paused for a quiet reading.
	paused bool
}

// sampler reads the live process every period and keeps every reading.
type sampler struct {
	p      *proc
	db     string // the SQLite database's path
	paused func() bool
	period time.Duration
	dir    string // goroutine profiles go here
	hc     *http.Client

	mu      sync.Mutex
	samples []sample
}

func newSampler(p *proc, db string, paused func() bool, period time.Duration, dir string) *sampler {
	tr := &http.Transport{DisableKeepAlives: true}
	return &sampler{p: p, db: db, paused: paused, period: period, dir: dir, hc: &http.Client{Transport: tr, Timeout: 2 * time.Second}}
}

func (s *sampler) run(ctx context.Context) {
	tick := time.NewTicker(s.period)
	defer tick.Stop()
	for {
		if sm, ok := s.read(); ok {
			s.mu.Lock()
			s.samples = append(s.samples, sm)
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// read samples the live instance; false when none runs or it vanished
// during the reading (a reading must come from one process).
func (s *sampler) read() (sample, bool) {
	inst, pid, started := s.p.current()
	if pid == 0 {
		return sample{}, false
	}
	sm := sample{instance: inst, at: time.Now(), age: time.Since(started), goroutines: -1, paused: s.paused()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return sample{}, false
	}
	sm.rssKiB = statusField(status, "VmRSS:")
	sm.threads = statusField(status, "Threads:")
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return sample{}, false
	}
	sm.fds = int64(len(fds))
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		switch {
		case err != nil:
		case strings.HasPrefix(l, "socket:"):
			sm.sockets++
		case l == s.db || l == s.db+"-wal":
			sm.poolFDs++
		}
	}
	if b, err := s.get("/goroutines"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			sm.goroutines = n
		}
	}
	if now, pidNow, _ := s.p.current(); now != inst || pidNow != pid {
		return sample{}, false
	}
	return sm, true
}

func (s *sampler) get(path string) ([]byte, error) {
	resp, err := s.hc.Get("http://" + s.p.debugAddr + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d", path, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 8<<20))
}

// saveProfile writes the live instance's goroutine profile (counts by
// stack) to the artifacts, so that growth can be traced to its stacks.
func (s *sampler) saveProfile(label string) {
	b, err := s.get("/goroutine-profile")
	if err != nil {
		return
	}
	_ = os.WriteFile(filepath.Join(s.dir, "goroutines-"+label+".txt"), b, 0o600)
}

func (s *sampler) all() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.samples)
}

// dbPoolBound is the most descriptors the SQLite store's pools may hold
// open: one writer and max(4, GOMAXPROCS) readers, each with the database
// and its WAL open. A pool opens a connection when concurrent reads first
// need it and never closes it, so how many are open depends on the peak
// concurrency a process has seen, not on leaks: they are checked against
// this bound, apart from the other descriptors. GOMAXPROCS is at most the
// number of CPUs.
func dbPoolBound() int64 { return int64(2 * (1 + max(4, runtime.NumCPU()))) }

// statusField reads a numeric field of /proc/PID/status ("VmRSS:   1234 kB").
func statusField(status []byte, name string) int64 {
	sc := bufio.NewScanner(strings.NewReader(string(status)))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return -1
}

// figure is the medians of some samples of one instance.
type figure struct {
	instance                         int
	n                                int           // samples behind it
	age                              time.Duration // median age
	rssKiB, goroutines, threads, fds int64
	sockets, poolFDs                 int64
	// otherFDs are the descriptors outside the SQLite pools.
	otherFDs int64
}

// medianOf is the medians of the samples keep selects, field by field.
func medianOf(samples []sample, keep func(sample) bool) (figure, bool) {
	var sel []sample
	for _, s := range samples {
		if keep(s) {
			sel = append(sel, s)
		}
	}
	if len(sel) == 0 {
		return figure{}, false
	}
	med := func(get func(sample) int64) int64 {
		v := make([]int64, 0, len(sel))
		for _, s := range sel {
			if x := get(s); x >= 0 {
				v = append(v, x)
			}
		}
		if len(v) == 0 {
			return -1
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return figure{
		instance:   sel[0].instance,
		n:          len(sel),
		age:        time.Duration(med(func(s sample) int64 { return int64(s.age) })),
		rssKiB:     med(func(s sample) int64 { return s.rssKiB }),
		goroutines: med(func(s sample) int64 { return s.goroutines }),
		threads:    med(func(s sample) int64 { return s.threads }),
		fds:        med(func(s sample) int64 { return s.fds }),
		sockets:    med(func(s sample) int64 { return s.sockets }),
		poolFDs:    med(func(s sample) int64 { return s.poolFDs }),
		otherFDs:   med(func(s sample) int64 { return s.fds - s.poolFDs }),
	}, true
}

// instanceFigures are an instance's medians under load: early, the
// samples at ages [w, 2w]; late, those of the w before the quiet that
// precedes its end (a kill, or the end of the load).
type instanceFigures struct {
	instance        int
	life            time.Duration
	early, late     figure
	okEarly, okLate bool
}

func figuresByInstance(samples []sample, ends map[int]time.Time, w time.Duration) []instanceFigures {
	var out []instanceFigures
	seen := map[int]bool{}
	for _, s := range samples {
		if seen[s.instance] {
			continue
		}
		seen[s.instance] = true
		inst := s.instance
		end, ok := ends[inst]
		if !ok {
			continue
		}
		started := s.at.Add(-s.age)
		f := instanceFigures{instance: inst, life: end.Sub(started)}
		f.early, f.okEarly = medianOf(samples, func(x sample) bool {
			return x.instance == inst && !x.paused && x.age >= w && x.age <= 2*w
		})
		lateEnd := end.Add(-quietLead)
		f.late, f.okLate = medianOf(samples, func(x sample) bool {
			return x.instance == inst && !x.paused && !x.at.After(lateEnd) && lateEnd.Sub(x.at) <= w
		})
		out = append(out, f)
	}
	return out
}
