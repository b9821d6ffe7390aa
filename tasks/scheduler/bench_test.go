package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// benchNodes builds a cluster: 40% 8×H100, 30% 8×A100-80GB, 10% A100-80GB
// in MIG mode (8 GPUs × 7 1g.10gb), 20% CPU-only.
func benchNodes(count int) []Node {
	nodes := make([]Node, count)
	for i := range nodes {
		n := Node{ID: fmt.Sprintf("node%05d", i), MilliCPU: 128000, MemoryBytes: 1024 * gi, Healthy: true}
		switch i % 10 {
		case 0, 1, 2, 3:
			for g := range 8 {
				n.Devices = append(n.Devices, Device{Type: "H100", Index: g, Healthy: true})
			}
		case 4, 5, 6:
			for g := range 8 {
				n.Devices = append(n.Devices, Device{Type: "A100-80GB", Index: g, Healthy: true})
			}
		case 7:
			for g := range 8 {
				for m := range 7 {
					n.Devices = append(n.Devices, Device{Type: "A100-80GB", MIG: "1g.10gb", Index: m, Parent: g, Healthy: true})
				}
			}
		default:
			n.MilliCPU, n.MemoryBytes = 64000, 256*gi
		}
		nodes[i] = n
	}
	return nodes
}

// benchShapes are the mixed run shapes with their weights (out of 100).
var benchShapes = []struct {
	gpu    string
	weight int
}{
	{"H100:1", 25}, {"H100:2", 10}, {"H100:4", 6}, {"H100:8|A100-80GB:8", 4},
	{"A100:1", 8}, {"A100-80GB:2", 5}, {"A100:4", 3}, {"1", 4}, {"2", 3},
	{"A100:1g.10gb", 12}, {"", 20},
}

func benchRuns(tb testing.TB, count int, seed uint64) []Run {
	rng := rand.New(rand.NewPCG(seed, 1))
	runs := make([]Run, count)
	for i := range runs {
		w := rng.IntN(100)
		var gpu string
		for _, s := range benchShapes {
			if w < s.weight {
				gpu = s.gpu
				break
			}
			w -= s.weight
		}
		res := tasks.Resources{CPU: fmt.Sprint(1 + rng.IntN(8)), Memory: fmt.Sprintf("%dGi", 4+rng.IntN(60))}
		if gpu != "" {
			alts := strings.Split(gpu, "|")
			res.GPU, res.GPUFallbacks = alts[0], alts[1:]
		}
		req, err := res.Parse()
		if err != nil {
			tb.Fatal(err)
		}
		runs[i] = Run{ID: fmt.Sprintf("run%05d", i), Request: req, Priority: rng.IntN(3), Project: fmt.Sprintf("p%d", rng.IntN(4))}
	}
	return runs
}

func benchScheduler(tb testing.TB, nodes []Node, runs []Run) *Scheduler {
	quota := map[string]int{"p0": 1 << 20, "p1": 1 << 20, "p2": 1 << 20, "p3": 1 << 20}
	s := newScheduler(tb, Config{ProjectGPUQuota: quota}, nodes...)
	enqueue(tb, s, runs...)
	return s
}

// drain schedules round after round until the queue is empty. Between
// rounds a fraction of the bound runs finish (all of them when finish is 1;
// the oldest first). It returns the placements made and the time spent
// inside Schedule.
func drain(tb testing.TB, s *Scheduler, finish float64) (placements, rounds int, elapsed time.Duration) {
	var bound []string
	for len(s.queue) > 0 {
		start := time.Now()
		bs := s.Schedule()
		elapsed += time.Since(start)
		rounds++
		if len(bs) == 0 && len(bound) == 0 {
			tb.Fatalf("round %d placed nothing with %d runs waiting: %s", rounds, len(s.queue), s.queue[0].reason)
		}
		placements += len(bs)
		for _, b := range bs {
			bound = append(bound, b.RunID)
		}
		done := min(len(bound), max(1, int(finish*float64(len(bound)))))
		for _, id := range bound[:done] {
			s.Release(id)
		}
		bound = bound[done:]
	}
	return placements, rounds, elapsed
}

// BenchmarkSchedule measures placements per second and the latency of each
// run's placement decision for 10,000 queued runs of mixed shapes on 1,000
// and 5,000 nodes. "drain": every bound run finishes between rounds.
// "churn": a fifth of them do, so most of the queue is looked at, and waits,
// round after round; placements/s then counts the time of those waiting
// decisions too. In the same run it measures a baseline that scans every
// node per decision (the same gang/type/fallback rules, no index) and
// reports the ratio (drain only: the baseline has no churn mode).
func BenchmarkSchedule(b *testing.B) {
	for _, bc := range []struct {
		nodes  int
		mode   string
		finish float64
	}{{1000, "drain", 1}, {5000, "drain", 1}, {1000, "churn", 0.2}, {5000, "churn", 0.2}} {
		count := bc.nodes
		b.Run(fmt.Sprintf("nodes=%d/runs=10000/%s", count, bc.mode), func(b *testing.B) {
			nodes := benchNodes(count)
			runs := benchRuns(b, 10000, 42)
			var placements, rounds int
			var elapsed, scanElapsed time.Duration
			var scanPlacements int
			var latencies []time.Duration
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				s := benchScheduler(b, nodes, runs)
				b.StartTimer()
				p, r, e := drain(b, s, bc.finish)
				b.StopTimer()
				placements += p
				rounds += r
				elapsed += e

				if i > 0 {
					b.StartTimer()
					continue
				}
				// Once: the latency pass, the same work with a clock read
				// around every decision, kept apart so the clock reads do
				// not weigh on the throughput figure; and the baseline.
				s = benchScheduler(b, nodes, runs)
				s.observe = func(d time.Duration) { latencies = append(latencies, d) }
				drain(b, s, bc.finish)

				if bc.mode == "drain" {
					sp, se := scanBaseline(nodes, runs)
					scanPlacements += sp
					scanElapsed += se
				}
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(latencies)
			pct := func(p float64) float64 {
				return float64(latencies[int(p*float64(len(latencies)-1))].Nanoseconds()) / 1e3
			}
			rate := float64(placements) / elapsed.Seconds()
			b.ReportMetric(rate, "placements/s")
			b.ReportMetric(pct(0.50), "p50-decision-µs")
			b.ReportMetric(pct(0.99), "p99-decision-µs")
			b.ReportMetric(float64(latencies[len(latencies)-1].Nanoseconds())/1e3, "max-decision-µs")
			b.ReportMetric(float64(rounds)/float64(b.N), "rounds/op")
			b.ReportMetric(float64(len(latencies)), "decisions/op")
			if scanPlacements > 0 {
				scanRate := float64(scanPlacements) / scanElapsed.Seconds()
				b.ReportMetric(scanRate, "scan-baseline-placements/s")
				b.ReportMetric(rate/scanRate, "speedup-vs-scan")
			}
		})
	}
}

// scanNode is the baseline's view of a node: free counts per device kind.
type scanNode struct {
	kinds    []poolKey
	free     []int
	cpu, mem int64
}

// scanBaseline places the same runs with the same rounds as drain, but each
// decision scans every node for the fullest that fits. It skips reasons,
// quotas and reservations, so it flatters the baseline.
func scanBaseline(nodes []Node, runs []Run) (placements int, elapsed time.Duration) {
	ns := make([]scanNode, len(nodes))
	for i, n := range nodes {
		sn := scanNode{cpu: n.MilliCPU, mem: n.MemoryBytes}
		for _, d := range n.Devices {
			k := poolKey{typ: d.Type, mig: d.MIG}
			j := slices.Index(sn.kinds, k)
			if j < 0 {
				sn.kinds = append(sn.kinds, k)
				sn.free = append(sn.free, 0)
				j = len(sn.kinds) - 1
			}
			sn.free[j]++
		}
		ns[i] = sn
	}
	queue := slices.Clone(runs)
	slices.SortStableFunc(queue, func(a, b Run) int { return b.Priority - a.Priority })
	type taken struct{ node, kind, count int }
	for len(queue) > 0 {
		start := time.Now()
		var held []taken
		var heldRuns []Run
		kept := queue[:0]
		for _, r := range queue {
			opts := r.Request.GPUs
			if len(opts) == 0 {
				opts = []tasks.GPURequest{{}}
			}
			bestNode, bestKind := -1, -1
			var need int
			for _, o := range opts {
				need = o.Count
				bestFree := 0
				for i := range ns {
					n := &ns[i]
					if n.cpu < r.Request.MilliCPU || n.mem < r.Request.MemoryBytes {
						continue
					}
					if need == 0 {
						if bestNode < 0 || len(n.kinds) == 0 && len(ns[bestNode].kinds) > 0 {
							bestNode = i
						}
						continue
					}
					for j, k := range n.kinds {
						if n.free[j] >= need && (bestNode < 0 || n.free[j] < bestFree) && o.Matches(k.typ, k.mig) {
							bestNode, bestKind, bestFree = i, j, n.free[j]
						}
					}
				}
				if bestNode >= 0 {
					break
				}
			}
			if bestNode < 0 {
				kept = append(kept, r)
				continue
			}
			n := &ns[bestNode]
			n.cpu -= r.Request.MilliCPU
			n.mem -= r.Request.MemoryBytes
			if bestKind >= 0 {
				n.free[bestKind] -= need
			}
			held = append(held, taken{bestNode, bestKind, need})
			heldRuns = append(heldRuns, r)
			placements++
		}
		queue = kept
		elapsed += time.Since(start)
		if len(held) == 0 {
			break
		}
		for i, h := range held {
			n := &ns[h.node]
			n.cpu += heldRuns[i].Request.MilliCPU
			n.mem += heldRuns[i].Request.MemoryBytes
			if h.kind >= 0 {
				n.free[h.kind] += h.count
			}
		}
	}
	return placements, elapsed
}

// BenchmarkPosition looks up queue positions in a queue of 10,000 waiting
// runs; the bare baseline is a linear scan of the same queue, in the same
// run.
func BenchmarkPosition(b *testing.B) {
	s := benchScheduler(b, nil, benchRuns(b, 10000, 7))
	s.Schedule() // no nodes: every run waits, with a reason
	ids := make([]string, len(s.queue))
	for i, r := range s.queue {
		ids[i] = r.run.ID
	}
	var sink int
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		pos, _, _ := s.Position(ids[i%len(ids)])
		sink += pos
	}
	per := float64(time.Since(start).Nanoseconds()) / float64(b.N)
	scanStart := time.Now()
	const scans = 2000
	for i := range scans {
		id := ids[(i*7919)%len(ids)]
		sink += slices.IndexFunc(s.queue, func(r *runState) bool { return r.run.ID == id })
	}
	scanPer := float64(time.Since(scanStart).Nanoseconds()) / scans
	b.ReportMetric(per, "ns/lookup")
	b.ReportMetric(scanPer, "scan-baseline-ns/lookup")
	b.ReportMetric(scanPer/per, "speedup-vs-scan")
	if sink == 0 {
		b.Fatal("no positions")
	}
}

// BenchmarkSubmitBurst measures scheduling rounds against a full cluster
// with 10,000 runs waiting, each round after 10 more submissions that do
// not fit either (the shape of a burst of submissions while long jobs hold
// every GPU). A round resumes after the runs the previous one decided;
// the baseline, in the same run, walks the whole queue every round (what
// Schedule did before rounds could resume) for at most baselineRounds
// rounds, so that the queue is the same size for both and the baseline's
// time does not grow with b.N. Reported: rounds/s of each and the ratio.
func BenchmarkSubmitBurst(b *testing.B) {
	nodes := benchNodes(100)
	big := func(i int) Run {
		res := tasks.Resources{CPU: "1", Memory: "1Gi", GPU: "H100:8"}
		req, err := res.Parse()
		if err != nil {
			b.Fatal(err)
		}
		return Run{ID: fmt.Sprintf("burst%07d", i), Request: req, Project: "p0"}
	}
	const baselineRounds = 100
	rate := func(full bool, rounds int) float64 {
		s := benchScheduler(b, nodes, benchRuns(b, 10000, 42))
		s.fullRounds = full
		s.Schedule() // fills the cluster; the rest waits
		for i := range 10000 {
			enqueue(b, s, big(i)) // 8 H100s on a full cluster: waits
		}
		s.Schedule()
		next := 10000
		start := time.Now()
		for range rounds {
			for range 10 {
				enqueue(b, s, big(next))
				next++
			}
			if bs := s.Schedule(); len(bs) > 0 {
				b.Fatalf("a round bound %d runs on a full cluster", len(bs))
			}
		}
		return float64(rounds) / time.Since(start).Seconds()
	}
	b.ResetTimer()
	inc := rate(false, b.N)
	b.StopTimer()
	full := rate(true, min(b.N, baselineRounds))
	b.ReportMetric(inc, "rounds/s")
	b.ReportMetric(full, "full-walk-rounds/s")
	b.ReportMetric(inc/full, "speedup")
}

// BenchmarkQueueSummary measures QueueSummary (GET /queue, the metrics'
// queue depth by reason and project), which walks every run under the
// leader's lock, at two queue sizes: ns/run flat means the walk is the
// cost, and the ms per summary is how long a scrape holds the leader.
func BenchmarkQueueSummary(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			s := benchScheduler(b, nil, benchRuns(b, n, 7))
			s.Schedule() // no nodes: every run waits, with a reason
			var sink int
			for b.Loop() {
				sink += s.QueueSummary().Waiting
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/run")
			if sink == 0 {
				b.Fatal("nothing waiting")
			}
		})
	}
}
