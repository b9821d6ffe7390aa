//go:build soak

package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// finalStatus is what GET /run/{name} said once the load stopped.
type finalStatus struct {
	Name     string `json:"name"`
	Phase    string `json:"phase"`
	Done     bool   `json:"done"`
	Error    string `json:"error"`
	Attempts []struct {
		Phase string `json:"phase"`
		Error string `json:"error"`
	} `json:"attempts"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	lost       bool
}

// verdict is everything the summary reports and the test judges.
type verdict struct {
	final                                    map[string]finalStatus
	succeeded, aborted, ended, pending, lost int
	unexpectedEnds                           map[string][]string // error kind -> runs
	attemptEnds                              map[string]int      // phase: error kind -> attempts that did not succeed
	retried                                  int
	lastFinish                               time.Time
	troubleIn, troubleOut                    map[string]int // op -> count
	callbackRuns, completedOK, startedOK     int
	callbacksMissing, outOfOrder             int
	sseMismatch                              int
	instances                                []instanceFigures
	quiets                                   []quietFigure
	baseLabel, endLabel                      string
	stopTook                                 time.Duration
	stopErr                                  error
	logs                                     logScan
	failures, findings                       []string
}

// verify lets every acknowledged run end, then judges the soak.
func (s *soak) verify(t *testing.T) *verdict {
	t.Helper()
	v := &verdict{final: map[string]finalStatus{}, unexpectedEnds: map[string][]string{}, attemptEnds: map[string]int{},
		troubleIn: map[string]int{}, troubleOut: map[string]int{}}
	l := s.load
	runs := l.book.runs()

	// Every acknowledged run must exist and end.
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.drain)
	var mu sync.Mutex
	feed := make(chan *runRec)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for r := range feed {
				st := l.waitTerminal(ctx, r)
				mu.Lock()
				v.final[r.name] = st
				mu.Unlock()
			}
		})
	}
	for _, r := range runs {
		feed <- r
	}
	close(feed)
	wg.Wait()
	cancel()

	for _, r := range runs {
		st := v.final[r.name]
		switch {
		case st.lost:
			v.lost++
			v.failures = append(v.failures, fmt.Sprintf("acknowledged run %s (%s, acknowledged at %s) is 404: lost",
				r.name, r.task, r.ackedAt.Sub(s.began).Round(time.Millisecond)))
			continue
		case !st.Done:
			v.pending++
			v.failures = append(v.failures, fmt.Sprintf("run %s (%s) is still %s %s after the load ended",
				r.name, r.task, st.Phase, s.cfg.drain))
			continue
		}
		if len(st.Attempts) > 1 {
			v.retried++
		}
		for _, a := range st.Attempts {
			if a.Phase != "succeeded" {
				v.attemptEnds[a.Phase+": "+errorKind(a.Error)]++
			}
		}
		if st.FinishedAt != nil && st.FinishedAt.After(v.lastFinish) {
			v.lastFinish = *st.FinishedAt
		}
		switch {
		case st.Phase == "succeeded":
			v.succeeded++
		case st.Phase == "aborted" && r.abortTried.Load():
			v.aborted++
		default:
			v.ended++
			kind := st.Phase + ": " + errorKind(st.Error)
			v.unexpectedEnds[kind] = append(v.unexpectedEnds[kind], r.name)
		}
		if p, _ := r.ssePhase.Load().(string); p != "" && p != st.Phase {
			v.sseMismatch++
			v.failures = append(v.failures, fmt.Sprintf("run %s: its event stream ended with %s, the run with %s", r.name, p, st.Phase))
		}
	}
	for kind, names := range v.unexpectedEnds {
		v.failures = append(v.failures, fmt.Sprintf("%d runs that were not aborted ended %s (e.g. %s)",
			len(names), kind, strings.Join(names[:min(3, len(names))], ", ")))
	}
	for _, name := range l.book.dupNames {
		v.failures = append(v.failures, "two submits were acknowledged with the same run "+name)
	}

	s.checkCallbacks(v, runs)
	s.classifyTrouble(v)
	s.checkGrowth(v)

	l.protoMu.Lock()
	for _, p := range l.protocol[:min(10, len(l.protocol))] {
		v.failures = append(v.failures, "event stream: "+p)
	}
	if len(l.protocol) > 10 {
		v.failures = append(v.failures, fmt.Sprintf("event stream: %d more broken events", len(l.protocol)-10))
	}
	l.protoMu.Unlock()
	s.mu.Lock()
	v.failures = append(v.failures, s.deaths...)
	for _, r := range s.restarts {
		if r.err != nil {
			v.failures = append(v.failures, fmt.Sprintf("restart at %s: %v", r.at.Round(time.Second), r.err))
		}
	}
	s.mu.Unlock()
	return v
}

// finalOp names the requests that check the runs after the load.
const finalOp = "final get run (after the load)"

// waitTerminal polls a run until it is terminal, 404, or ctx ends.
func (l *load) waitTerminal(ctx context.Context, r *runRec) finalStatus {
	var st finalStatus
	for {
		code, b, ok := l.do(ctx, exchange{op: finalOp, method: http.MethodGet, path: "/run/" + r.name, owner: r.owner,
			expect: func(c int) bool { return c == http.StatusOK }})
		switch {
		case !ok:
			return st
		case code == http.StatusNotFound:
			return finalStatus{Name: r.name, lost: true}
		case code == http.StatusOK:
			var next finalStatus
			if json.Unmarshal(b, &next) == nil {
				st = next
			}
			if st.Done {
				return st
			}
		}
		pause(ctx, 250*time.Millisecond)
		if ctx.Err() != nil {
			return st
		}
	}
}

var digits = regexp.MustCompile(`[0-9]+`)

// errorKind groups run errors that differ only by numbers.
func errorKind(s string) string {
	if s == "" {
		return "(no error text)"
	}
	return truncate(digits.ReplaceAllString(s, "N"), 160)
}

// checkCallbacks waits for every callback run's completed callback, then
// checks each run got its callbacks, about itself.
func (s *soak) checkCallbacks(v *verdict, runs []*runRec) {
	var withCB []*runRec
	for _, r := range runs {
		if r.sub != "" && v.final[r.name].Done {
			withCB = append(withCB, r)
		}
	}
	v.callbackRuns = len(withCB)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		missing := 0
		for _, r := range withCB {
			if !slices.ContainsFunc(s.load.rcv.of(r.sub), func(c callback) bool { return c.typ == "run.completed" }) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	var examples []string
	for _, r := range withCB {
		st := v.final[r.name]
		cbs := s.load.rcv.of(r.sub)
		completed := slices.IndexFunc(cbs, func(c callback) bool { return c.typ == "run.completed" })
		started := slices.IndexFunc(cbs, func(c callback) bool { return c.typ == "run.started" })
		for _, c := range cbs {
			if c.run != r.name {
				v.failures = append(v.failures, fmt.Sprintf("callback %s for run %s was about run %s", c.id, r.name, c.run))
			}
		}
		switch {
		case completed < 0:
			v.callbacksMissing++
			examples = append(examples, r.name+" (completed)")
		case cbs[completed].phase != st.Phase:
			v.failures = append(v.failures, fmt.Sprintf("run %s ended %s, its run.completed callback says %s", r.name, st.Phase, cbs[completed].phase))
		default:
			v.completedOK++
		}
		switch {
		case started >= 0:
			v.startedOK++
			if completed >= 0 && completed < started {
				v.outOfOrder++
			}
		case st.StartedAt != nil:
			v.callbacksMissing++
			examples = append(examples, r.name+" (started)")
		}
	}
	if v.callbacksMissing > 0 {
		v.failures = append(v.failures, fmt.Sprintf("%d callbacks never arrived within 2m of the runs' end (e.g. %s)",
			v.callbacksMissing, strings.Join(examples[:min(3, len(examples))], ", ")))
	}
	if v.outOfOrder > 0 {
		v.findings = append(v.findings, fmt.Sprintf("%d runs' run.completed callback arrived before their run.started (issue 14 item 10)", v.outOfOrder))
	}
	rcv := s.load.rcv
	rcv.mu.Lock()
	if rcv.refused > 0 || rcv.bodyErrs > 0 {
		v.failures = append(v.failures, fmt.Sprintf("the receiver refused %d callbacks' signatures and could not decode %d", rcv.refused, rcv.bodyErrs))
	}
	rcv.mu.Unlock()
}

// classifyTrouble sorts failed exchanges into those a restart explains and
// the rest.
func (s *soak) classifyTrouble(v *verdict) {
	l := s.load
	l.rec.mu.Lock()
	trouble := slices.Clone(l.rec.trouble)
	acceptedBad := slices.Clone(l.rec.acceptedBad)
	oddBad := slices.Clone(l.rec.oddBad)
	l.rec.mu.Unlock()
	examples := map[string][]string{}
	for _, o := range trouble {
		key := o.op + " → " + statusLabel(o.code)
		restartish := o.code == 0 || o.code >= 500
		if restartish && s.win.overlaps(o.sent, o.answered) {
			v.troubleIn[key]++
			continue
		}
		v.troubleOut[key]++
		if len(examples[key]) < 3 {
			examples[key] = append(examples[key], fmt.Sprintf("at %s: %s", o.sent.Sub(s.began).Round(time.Millisecond), o.detail))
		}
	}
	for _, key := range sortedKeys(v.troubleOut) {
		v.failures = append(v.failures, fmt.Sprintf("%d × %s outside restart windows; %s", v.troubleOut[key], key, strings.Join(examples[key], " | ")))
	}
	byOp := map[string]int{}
	for _, o := range acceptedBad {
		byOp[o.op+" → "+statusLabel(o.code)]++
	}
	for _, key := range sortedKeys(byOp) {
		v.findings = append(v.findings, fmt.Sprintf("%d × %s: a bad request was accepted", byOp[key], key))
	}
	byOp = map[string]int{}
	for _, o := range oddBad {
		byOp[o.op+" → "+statusLabel(o.code)]++
	}
	for _, key := range sortedKeys(byOp) {
		v.findings = append(v.findings, fmt.Sprintf("%d × %s: not the expected 4xx", byOp[key], key))
	}
}

// checkGrowth compares the first and the last quiet readings: the same
// age after a start, the load paused and drained (see the package doc).
func (s *soak) checkGrowth(v *verdict) {
	s.mu.Lock()
	ends := maps.Clone(s.ends)
	v.quiets = slices.Clone(s.quiets)
	s.mu.Unlock()
	v.instances = figuresByInstance(s.sampler.all(), ends, s.cfg.sampleWindow())
	points := s.cfg.checkpoints()
	if len(v.quiets) != len(points) {
		v.failures = append(v.failures, fmt.Sprintf("%d quiet readings of %d: growth not measured", len(v.quiets), len(points)))
		return
	}
	for i, q := range v.quiets {
		if !q.drained {
			v.findings = append(v.findings, fmt.Sprintf("the quiet reading at %s did not drain (%s): it may count load", points[i], q.detail))
		}
	}
	first, last := v.quiets[0], v.quiets[len(v.quiets)-1]
	v.baseLabel = fmt.Sprintf("%s (instance %d)", points[0], first.instance)
	v.endLabel = fmt.Sprintf("%s (instance %d)", points[len(points)-1], last.instance)
	for _, m := range []struct {
		name      string
		base, end int64
	}{{"RSS", first.rssKiB, last.rssKiB}, {"goroutines", first.goroutines, last.goroutines},
		{"open fds outside the SQLite pools", first.otherFDs, last.otherFDs}} {
		switch {
		case m.base <= 0 || m.end <= 0:
			v.failures = append(v.failures, m.name+" not measured")
		case float64(m.end) > float64(m.base)*1.10:
			v.failures = append(v.failures, fmt.Sprintf("%s grew %.1f%% (%d → %d) from %s to %s, read quietly", m.name,
				100*float64(m.end-m.base)/float64(m.base), m.base, m.end, v.baseLabel, v.endLabel))
		}
	}
	for i, q := range v.quiets {
		if q.poolFDs > dbPoolBound() {
			v.failures = append(v.failures, fmt.Sprintf("at %s the process held %d descriptors of the database and its WAL, more than its pools may (%d)",
				points[i], q.poolFDs, dbPoolBound()))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
