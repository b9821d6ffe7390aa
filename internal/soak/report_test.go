//go:build soak

package soak

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// logScan is what the quickstart's log says across every instance.
type logScan struct {
	lines, errors, warnings, panics int
	top                             []string // most frequent ERROR and WARN messages
}

var logMsg = regexp.MustCompile(`level=(ERROR|WARN) msg=("(?:[^"\\]|\\.)*"|\S+)`)

func scanLog(path string) logScan {
	var ls logScan
	f, err := os.Open(path)
	if err != nil {
		return ls
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		ls.lines++
		if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") || strings.Contains(line, "DATA RACE") {
			ls.panics++
		}
		m := logMsg.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if m[1] == "ERROR" {
			ls.errors++
		} else {
			ls.warnings++
		}
		counts[m[1]+" "+errorKind(m[2])]++
	}
	keys := sortedKeys(counts)
	sort.SliceStable(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
	for _, k := range keys[:min(8, len(keys))] {
		ls.top = append(ls.top, fmt.Sprintf("%d × %s", counts[k], k))
	}
	return ls
}

// summary is the soak's report as Markdown, ready for README.
func (s *soak) summary(v *verdict) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	l, cfg := s.load, s.cfg
	secs := cfg.duration.Seconds()
	restarts := len(s.restarts)

	p("\n## Soak summary\n")
	p("%s of load on the quickstart (SQLite, all-in-one), SIGKILL and restart every %s (%d restarts); "+
		"%.0f operations/s offered to %d workers (%d not started: every worker busy), %d event-stream followers.\n",
		cfg.duration, orNever(cfg.restartEvery), restarts, cfg.rate, cfg.workers, s.skipped, cfg.followers)

	p("| runs | count |")
	p("|---|---:|")
	p("| submitted (valid) | %d |", l.book.submits.Load())
	p("| acknowledged (2xx) | %d |", l.book.acked.Load())
	p("| outcome unknown (no Idempotency-Key, no answer in a restart) | %d |", l.book.unknown.Load())
	p("| never acknowledged (keyed, retried 2 min) | %d |", l.book.gaveUp.Load())
	p("| submits sent again with their key | %d |", l.book.retries.Load())
	p("| succeeded | %d |", v.succeeded)
	p("| aborted (abort requested) | %d |", v.aborted)
	p("| ended otherwise (failed, timed out, or aborted unasked) | %d |", v.ended)
	p("| not terminal %s after the load | %d |", cfg.drain, v.pending)
	p("| lost (404) | %d |", v.lost)
	p("| runs with more than one attempt | %d |", v.retried)
	p("")
	if len(v.attemptEnds) > 0 {
		p("Attempts that did not succeed, by error (flaky's own failures included):\n")
		p("| attempts | error |")
		p("|---:|---|")
		keys := sortedKeys(v.attemptEnds)
		sort.SliceStable(keys, func(i, j int) bool { return v.attemptEnds[keys[i]] > v.attemptEnds[keys[j]] })
		for _, k := range keys[:min(10, len(keys))] {
			p("| %d | %s |", v.attemptEnds[k], strings.ReplaceAll(k, "|", "\\|"))
		}
		p("")
	}

	p("| throughput and latency | |")
	p("|---|---:|")
	p("| acknowledged runs/s | %.1f |", float64(l.book.acked.Load())/secs)
	p("| runs ended/s | %.1f |", float64(v.succeeded+v.aborted+v.ended)/secs)
	var requests int
	l.rec.mu.Lock()
	for op, m := range l.rec.counts {
		if op == finalOp {
			continue // sent after the load
		}
		for _, n := range m {
			requests += n
		}
	}
	lat := slices.Clone(l.rec.latency)
	l.rec.mu.Unlock()
	slices.Sort(lat)
	p("| requests/s during the load (all kinds) | %.1f |", float64(requests)/secs)
	p("| submit latency p50 / p99 / max (no Prefer: wait) | %s / %s / %s |", ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99)), ms(percentile(lat, 1)))
	if !v.lastFinish.IsZero() {
		p("| last run ended after the load | %s |", v.lastFinish.Sub(s.began.Add(cfg.duration)).Round(time.Millisecond))
	}
	p("")

	p("| requests | total | by status |")
	p("|---|---:|---|")
	l.rec.mu.Lock()
	for _, op := range sortedKeys(l.rec.counts) {
		m := l.rec.counts[op]
		total := 0
		var parts []string
		for _, st := range sortedKeys(m) {
			total += m[st]
			parts = append(parts, fmt.Sprintf("%s × %d", st, m[st]))
		}
		p("| %s | %d | %s |", op, total, strings.Join(parts, ", "))
	}
	l.rec.mu.Unlock()
	p("")
	p("| 5xx or no answer | inside restart windows | outside |")
	p("|---|---:|---:|")
	keys := sortedKeys(v.troubleIn)
	for _, k := range sortedKeys(v.troubleOut) {
		if _, ok := v.troubleIn[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		p("| (none) | 0 | 0 |")
	}
	for _, k := range keys {
		p("| %s | %d | %d |", k, v.troubleIn[k], v.troubleOut[k])
	}
	p("")

	p("Process, read quietly %s before each kill and at the end (same age after a start; see go doc ./internal/soak):\n", quietLead)
	if n := len(v.quiets); n > 0 {
		first, last := v.quiets[0].figure, v.quiets[n-1].figure
		p("| | %s | %s | change |", v.baseLabel, v.endLabel)
		p("|---|---:|---:|---:|")
		row := func(name string, base, end int64, scale float64) {
			p("| %s | %s | %s | %s |", name, num(base, scale), num(end, scale), change(base, end))
		}
		row("RSS (MiB)", first.rssKiB, last.rssKiB, 1024)
		row("goroutines", first.goroutines, last.goroutines, 1)
		row("threads (reported only)", first.threads, last.threads, 1)
		row("open fds outside the SQLite pools", first.otherFDs, last.otherFDs, 1)
		row(fmt.Sprintf("SQLite pool fds (at most %d)", dbPoolBound()), first.poolFDs, last.poolFDs, 1)
		p("")
		p("| checkpoint | instance | age | RSS MiB | goroutines | threads | fds: all, sockets, SQLite pools | pause to reading |")
		p("|---:|---:|---:|---:|---:|---:|---:|---:|")
		points := cfg.checkpoints()
		for i, q := range v.quiets {
			took := q.took.Round(100 * time.Millisecond).String()
			if !q.drained {
				took += " (not drained: " + q.detail + ")"
			}
			p("| %s | %d | %s | %s | %s | %s | %s, %d, %d | %s |", points[i], q.instance, q.age.Round(time.Second),
				num(q.rssKiB, 1024), num(q.goroutines, 1), num(q.threads, 1), num(q.fds, 1), q.sockets, q.poolFDs, took)
		}
		p("")
	}
	p("Under load (medians of the samples %s after the start and in the last %s; shown, not judged):\n",
		fmt.Sprintf("%s–%s", cfg.sampleWindow().Round(time.Second), (2*cfg.sampleWindow()).Round(time.Second)), cfg.sampleWindow().Round(time.Second))
	p("| instance | life | RSS MiB early → late | goroutines | threads | fds |")
	p("|---:|---:|---|---|---|---|")
	for _, f := range v.instances {
		p("| %d | %s | %s → %s | %s → %s | %s → %s | %s → %s |", f.instance, f.life.Round(time.Second),
			num(f.early.rssKiB, 1024), num(f.late.rssKiB, 1024), num(f.early.goroutines, 1), num(f.late.goroutines, 1),
			num(f.early.threads, 1), num(f.late.threads, 1), num(f.early.fds, 1), num(f.late.fds, 1))
	}
	p("")
	if restarts > 0 {
		p("| restart | at | age of the killed process | SIGKILL to /health 200 |")
		p("|---:|---:|---:|---:|")
		for i, r := range s.restarts {
			p("| %d | %s | %s | %s |", i+1, r.at.Round(time.Second), r.age.Round(time.Second), r.down.Round(time.Millisecond))
		}
		p("")
	}
	rcv := l.rcv
	rcv.mu.Lock()
	dups, stray := rcv.dups, rcv.stray
	rcv.mu.Unlock()
	p("Callbacks: %d terminal runs asked for start and completed callbacks; %d run.completed and %d run.started arrived, "+
		"%d missing, %d delivered again (same webhook-id), %d completed before started, %d to a bad request's URL.",
		v.callbackRuns, v.completedOK, v.startedOK, v.callbacksMissing, dups, v.outOfOrder, stray)
	p("Event streams: %d followed to their terminal event, %d resumed with Last-Event-ID after a cut, %d ended otherwise than the run.",
		l.sseDone.Load(), l.sseResumed.Load(), v.sseMismatch)
	p("Log: %d lines, %d ERROR, %d WARN, %d panics or fatal errors.", v.logs.lines, v.logs.errors, v.logs.warnings, v.logs.panics)
	for _, t := range v.logs.top {
		p("  - %s", t)
	}
	stop := "exited cleanly"
	if v.stopErr != nil {
		stop = v.stopErr.Error()
	}
	p("SIGTERM at the end: %s after %s.\n", stop, v.stopTook.Round(time.Millisecond))
	if len(v.findings) > 0 {
		p("Findings (not failures):")
		for _, f := range v.findings {
			p("- %s", f)
		}
		p("")
	}
	if len(v.failures) == 0 {
		p("**PASS**")
	} else {
		p("**FAIL** (%d):", len(v.failures))
		for _, f := range v.failures[:min(40, len(v.failures))] {
			p("- %s", f)
		}
		if len(v.failures) > 40 {
			p("- … %d more", len(v.failures)-40)
		}
	}
	return b.String()
}

func orNever(d time.Duration) string {
	if d == 0 {
		return "never"
	}
	return d.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func num(v int64, scale float64) string {
	if v < 0 {
		return "–"
	}
	if scale == 1 {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%.1f", float64(v)/scale)
}

func change(base, end int64) string {
	if base <= 0 || end < 0 {
		return "–"
	}
	return fmt.Sprintf("%+.1f%%", 100*float64(end-base)/float64(base))
}
