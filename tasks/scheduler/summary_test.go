package scheduler

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// naiveSummary is QueueSummary as a walk of every run would give it: the
// reference for the counts kept as runs change and the memoized reasons.
func naiveSummary(s *Scheduler) QueueSummary {
	sum := QueueSummary{Waiting: len(s.queue), Bound: len(s.runs) - len(s.queue)}
	for _, n := range s.reserved {
		if n.reservedBy != nil {
			sum.Reserved++
		}
	}
	projects := map[string]*ProjectSummary{}
	reasons := map[string]int{}
	for _, r := range s.runs {
		p := projects[r.run.Project]
		if p == nil {
			p = &ProjectSummary{Project: r.run.Project, GPUQuota: s.cfg.ProjectGPUQuota[r.run.Project]}
			projects[r.run.Project] = p
		}
		if r.binding != nil {
			p.Bound++
			p.GPUsInUse += r.binding.gpus
			continue
		}
		p.Waiting++
		reasons[s.reasonOf(r)]++
	}
	for _, p := range projects {
		sum.Projects = append(sum.Projects, *p)
	}
	slices.SortFunc(sum.Projects, func(a, b ProjectSummary) int { return cmp.Compare(a.Project, b.Project) })
	for reason, n := range reasons {
		sum.Reasons = append(sum.Reasons, ReasonCount{Reason: reason, Runs: n})
	}
	slices.SortFunc(sum.Reasons, func(a, b ReasonCount) int {
		if c := cmp.Compare(b.Runs, a.Runs); c != 0 {
			return c
		}
		return cmp.Compare(a.Reason, b.Reason)
	})
	return sum
}

// TestQueueSummaryMatchesAWalk drives a scheduler with quotas through
// random submissions, rounds, releases and cancellations, and compares
// QueueSummary (project counts kept as runs change, reasons memoized by
// request and project) with a walk of every run after each step.
func TestQueueSummaryMatchesAWalk(t *testing.T) {
	t.Parallel()
	settledSteps := 0 // steps after a round that stopped with the rest hopeless
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 7))
		quota := map[string]int{"p0": 4, "p1": 16}
		// Half the seeds cut rounds short; the others let rounds stop where
		// the rest is hopeless, whose runs get settled reasons.
		cut := 0
		if seed%2 == 0 {
			cut = 7
		}
		s := newScheduler(t, Config{ProjectGPUQuota: quota, MaxBindingsPerRound: cut},
			gpuNode(t, "a", "H100:8"), gpuNode(t, "b", "H100:4"))
		// GPU runs only, so that rounds often find every waiting shape
		// failed and stop; an A100 fits nowhere; p0's quota is small.
		runs := make([]Run, 400)
		for i := range runs {
			gpu := []string{"H100:1", "H100:2", "H100:4", "A100:1"}[rng.IntN(4)]
			runs[i] = Run{ID: fmt.Sprintf("r%03d", i), Project: fmt.Sprintf("p%d", rng.IntN(3)),
				Priority: rng.IntN(2), Request: request(t, "", "", gpu, "H100:1")}
		}
		next := 0
		var bound []string
		for step := range 120 {
			switch op := rng.IntN(10); {
			case op < 4 && next < len(runs):
				k := min(len(runs), next+1+rng.IntN(20))
				enqueue(t, s, runs[next:k]...)
				next = k
			case op < 7:
				for _, b := range s.Schedule() {
					bound = append(bound, b.RunID)
				}
			case op < 8 && len(bound) > 0:
				i := rng.IntN(len(bound))
				s.Release(bound[i])
				bound = slices.Delete(bound, i, i+1)
			case len(s.queue) > 0:
				s.Cancel(s.queue[rng.IntN(len(s.queue))].run.ID)
			}
			if s.stopAt != nil && !s.stopCut {
				settledSteps++
			}
			got, want := s.QueueSummary(), naiveSummary(s)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d step %d:\n got %+v\nwant %+v", seed, step, got, want)
			}
		}
	}
	if settledSteps == 0 {
		t.Fatal("no round stopped with the rest hopeless: the memoized reasons were not exercised")
	}
}
