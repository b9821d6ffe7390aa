package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/taskgate/taskgate/tasks"
)

// gpuShapes are the GPU specs random runs draw from: whole GPUs of a type,
// of the A100 family, of any type, MIG partitions, and fallback lists.
var gpuShapes = [][]string{
	{"H100:1"}, {"H100:2"}, {"H100:4"}, {"H100:8"},
	{"A100:1"}, {"A100:2"}, {"A100-80GB:4"}, {"A100-80GB:8"},
	{"L4:1"}, {"L4:2"},
	{"1"}, {"2"}, {"4"},
	{"A100:1g.10gb"}, {"A100-80GB:3g.40gb"}, {"H100:1g.10gb"},
	{"H100:8", "A100-80GB:8"}, {"H100:4", "A100:4", "2"}, {"H100:2g.20gb", "A100:1g.10gb"},
	{"B200:1"}, // on no node
}

func randomNode(rng *rand.Rand, id string) Node {
	n := Node{ID: id, MilliCPU: int64(8+rng.IntN(8)*8) * 1000, MemoryBytes: int64(32+rng.IntN(8)*32) * gi, Healthy: true}
	switch rng.IntN(6) {
	case 0: // CPU only
	case 1: // A100-80GB in MIG mode, mixed profiles per GPU
		for g := range 1 + rng.IntN(4) {
			profiles := [][]string{{"1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb"}, {"3g.40gb", "3g.40gb"}, {"3g.40gb", "1g.10gb", "1g.10gb", "1g.10gb"}}[rng.IntN(3)]
			for m, p := range profiles {
				n.Devices = append(n.Devices, Device{Type: "A100-80GB", MIG: p, Index: m, Parent: g, Healthy: true, UUID: fmt.Sprintf("MIG-%s-%d-%d", id, g, m)})
			}
		}
	case 2: // H100 with one GPU partitioned
		n.Devices = append(n.Devices, Device{Type: "H100", MIG: "1g.10gb", Index: 0, Parent: 0, Healthy: true}, Device{Type: "H100", MIG: "2g.20gb", Index: 1, Parent: 0, Healthy: true})
		for g := 1; g < 1+rng.IntN(8); g++ {
			n.Devices = append(n.Devices, Device{Type: "H100", Index: g, Healthy: true})
		}
	default:
		typ := []string{"H100", "A100-80GB", "A100-40GB", "L4"}[rng.IntN(4)]
		for g := range []int{1, 2, 4, 8, 8}[rng.IntN(5)] {
			n.Devices = append(n.Devices, Device{Type: typ, Index: g, Healthy: rng.IntN(20) != 0})
		}
	}
	return n
}

func randomRun(t testing.TB, rng *rand.Rand, id int) Run {
	res := tasks.Resources{CPU: fmt.Sprint(rng.IntN(16)), Memory: fmt.Sprintf("%dGi", rng.IntN(64))}
	if rng.IntN(4) != 0 {
		shape := gpuShapes[rng.IntN(len(gpuShapes))]
		res.GPU, res.GPUFallbacks = shape[0], shape[1:]
	}
	req, err := res.Parse()
	if err != nil {
		t.Fatal(err)
	}
	return Run{
		ID:       fmt.Sprintf("run%04d", id),
		Request:  req,
		Priority: rng.IntN(3),
		Project:  []string{"a", "b", "c"}[rng.IntN(3)],
	}
}

// simulate drives a scheduler through a random sequence of operations and
// checks the invariants after each one. It returns a transcript of every
// decision for the determinism check.
func simulate(t *testing.T, seed uint64, strategy Strategy) []string {
	return simulateRounds(t, seed, strategy, false)
}

// simulateRounds is simulate, with every round a full one when full is
// set (no resuming after the runs the previous round decided).
func simulateRounds(t *testing.T, seed uint64, strategy Strategy, full bool) []string {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	quota := map[string]int{"a": 6, "b": 16}
	s := newScheduler(t, Config{Strategy: strategy, ProjectGPUQuota: quota, Reservations: rng.IntN(3)})
	s.fullRounds = full
	nodes := map[string]Node{}
	for i := range 2 + rng.IntN(10) {
		n := randomNode(rng, fmt.Sprintf("node%02d", i))
		nodes[n.ID] = n
		if _, err := s.UpsertNode(n); err != nil {
			t.Fatal(err)
		}
	}
	runs := map[string]Run{}
	var bound []string // IDs, in binding order, for a deterministic pick
	var transcript []string
	nextID := 0
	unbind := func(ids []string) {
		bound = slices.DeleteFunc(bound, func(id string) bool { return slices.Contains(ids, id) })
	}
	for step := range 300 {
		switch op := rng.IntN(100); {
		case op < 35:
			for range 1 + rng.IntN(6) {
				r := randomRun(t, rng, nextID)
				nextID++
				runs[r.ID] = r
				if err := s.Enqueue(r); err != nil {
					t.Fatal(err)
				}
			}
		case op < 65:
			for _, b := range s.Schedule() {
				bound = append(bound, b.RunID)
				transcript = append(transcript, fmt.Sprintf("%d bind %s %s %d %v", step, b.RunID, b.NodeID, b.Option, b.Devices))
			}
			for _, w := range s.Waiting() {
				transcript = append(transcript, fmt.Sprintf("%d wait %s %d %s %s", step, w.RunID, w.Position, w.Reason, w.ReservedNode))
			}
		case op < 88:
			if len(bound) > 0 {
				id := bound[rng.IntN(len(bound))]
				if !s.Release(id) {
					t.Fatalf("seed %d: Release(%s) of a bound run failed", seed, id)
				}
				unbind([]string{id})
				delete(runs, id)
			}
		case op < 91:
			id := fmt.Sprintf("run%04d", rng.IntN(nextID+1))
			if s.Cancel(id) {
				unbind([]string{id})
				delete(runs, id)
			}
		case op < 95:
			id := fmt.Sprintf("node%02d", rng.IntN(len(nodes)))
			requeued := s.SetNodeHealth(id, rng.IntN(2) == 0)
			unbind(requeued)
			transcript = append(transcript, fmt.Sprintf("%d health %s %v", step, id, requeued))
		case op < 97:
			id := fmt.Sprintf("node%02d", rng.IntN(len(nodes)))
			requeued := s.RemoveNode(id)
			unbind(requeued)
			if _, err := s.UpsertNode(nodes[id]); err != nil {
				t.Fatal(err)
			}
			transcript = append(transcript, fmt.Sprintf("%d readd %s %v", step, id, requeued))
		default:
			// A device changes health in a fresh inventory.
			id := fmt.Sprintf("node%02d", rng.IntN(len(nodes)))
			n := nodes[id]
			n.Devices = slices.Clone(n.Devices)
			if len(n.Devices) > 0 {
				d := rng.IntN(len(n.Devices))
				n.Devices[d].Healthy = !n.Devices[d].Healthy
			}
			nodes[id] = n
			requeued, err := s.UpsertNode(n)
			if err != nil {
				t.Fatal(err)
			}
			unbind(requeued)
			transcript = append(transcript, fmt.Sprintf("%d upsert %s %v", step, id, requeued))
		}
		checkInvariants(t, seed, step, s, runs, bound, quota)
	}
	return transcript
}

func checkInvariants(t *testing.T, seed uint64, step int, s *Scheduler, runs map[string]Run, bound []string, quota map[string]int) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d step %d: %s", seed, step, fmt.Sprintf(format, args...))
	}
	snap := s.Snapshot()
	byNode := map[string]NodeInfo{}
	for _, n := range snap {
		byNode[n.ID] = n
	}
	held := map[string]map[string]bool{} // node -> device key -> held
	gpusByProject := map[string]int{}
	usedCPU, usedMem := map[string]int64{}, map[string]int64{}
	for _, id := range bound {
		b, ok := s.BindingOf(id)
		if !ok {
			fail("run %s should be bound", id)
		}
		r := runs[id]
		n, ok := byNode[b.NodeID]
		if !ok || !n.Healthy {
			fail("run %s bound to missing or unhealthy node %s", id, b.NodeID)
		}
		var want tasks.GPURequest
		switch {
		case len(r.Request.GPUs) == 0 && b.Option != 0, len(r.Request.GPUs) > 0 && b.Option >= len(r.Request.GPUs):
			fail("run %s: option %d out of range", id, b.Option)
		case len(r.Request.GPUs) > 0:
			want = r.Request.GPUs[b.Option]
		}
		if len(b.Devices) != want.Count {
			fail("run %s got %d devices for %v", id, len(b.Devices), want)
		}
		types := map[string]bool{}
		for _, d := range b.Devices {
			if !want.Matches(d.Type, d.MIG) || !d.Healthy {
				fail("run %s: device %+v does not serve %v", id, d, want)
			}
			types[d.Type] = true
			k := deviceKey(d)
			if held[b.NodeID] == nil {
				held[b.NodeID] = map[string]bool{}
			}
			if held[b.NodeID][k] {
				fail("device %s of %s allocated twice", k, b.NodeID)
			}
			held[b.NodeID][k] = true
		}
		if len(types) > 1 {
			fail("run %s got mixed types %v", id, types)
		}
		gpusByProject[r.Project] += len(b.Devices)
		usedCPU[b.NodeID] += r.Request.MilliCPU
		usedMem[b.NodeID] += r.Request.MemoryBytes
	}
	for _, n := range snap {
		if usedCPU[n.ID] > n.MilliCPU || usedMem[n.ID] > n.MemoryBytes {
			fail("node %s overcommitted: cpu %d/%d mem %d/%d", n.ID, usedCPU[n.ID], n.MilliCPU, usedMem[n.ID], n.MemoryBytes)
		}
		if n.FreeMilliCPU != n.MilliCPU-usedCPU[n.ID] || n.FreeMemoryBytes != n.MemoryBytes-usedMem[n.ID] {
			fail("node %s free cpu/mem %d/%d disagree with bindings", n.ID, n.FreeMilliCPU, n.FreeMemoryBytes)
		}
		holders := 0
		for _, d := range n.Devices {
			if d.RunID != "" {
				holders++
				if !held[n.ID][deviceKey(d.Device)] {
					fail("node %s device %+v held by %s without a binding", n.ID, d.Device, d.RunID)
				}
			}
		}
		if holders != len(held[n.ID]) {
			fail("node %s: %d devices held, bindings say %d", n.ID, holders, len(held[n.ID]))
		}
	}
	for p, q := range quota {
		if gpusByProject[p] > q {
			fail("project %s holds %d GPUs over its quota %d", p, gpusByProject[p], q)
		}
	}
	waiting := s.Waiting()
	if len(waiting)+len(bound) != len(runs) {
		fail("%d waiting + %d bound != %d runs", len(waiting), len(bound), len(runs))
	}
	for i, w := range waiting {
		if i > 0 {
			prev, cur := runs[waiting[i-1].RunID], runs[w.RunID]
			if prev.Priority < cur.Priority {
				fail("queue order: %s (priority %d) before %s (priority %d)", prev.ID, prev.Priority, cur.ID, cur.Priority)
			}
		}
		if pos, reason, ok := s.Position(w.RunID); !ok || pos != i+1 || reason != w.Reason {
			fail("Position(%s) = %d %q %v, Waiting says %d %q", w.RunID, pos, reason, ok, i+1, w.Reason)
		}
	}
}

// eachSeed calls f with each seed of the random-cluster tests (fewer
// under -short) and the strategy it runs with.
func eachSeed(f func(seed uint64, strategy Strategy)) {
	seeds := 80
	if testing.Short() {
		seeds = 10
	}
	for seed := range uint64(seeds) {
		strategy := BinPack
		if seed%3 == 2 {
			strategy = Spread
		}
		f(seed, strategy)
	}
}

func TestPropertiesRandomClusters(t *testing.T) {
	t.Parallel()
	eachSeed(func(seed uint64, strategy Strategy) {
		a := simulate(t, seed, strategy)
		b := simulate(t, seed, strategy)
		if !reflect.DeepEqual(a, b) {
			for i := range min(len(a), len(b)) {
				if a[i] != b[i] {
					t.Fatalf("seed %d: not deterministic at event %d:\n%s\n%s", seed, i, a[i], b[i])
				}
			}
			t.Fatalf("seed %d: not deterministic: %d vs %d events", seed, len(a), len(b))
		}
	})
}

// TestIncrementalRoundsMatchFullRounds: a round that resumes after the
// runs the previous one decided (nothing having changed for them) binds,
// orders, explains and reserves exactly as a full round does, over the
// random operation sequences of the property test.
func TestIncrementalRoundsMatchFullRounds(t *testing.T) {
	t.Parallel()
	eachSeed(func(seed uint64, strategy Strategy) {
		inc := simulateRounds(t, seed, strategy, false)
		full := simulateRounds(t, seed, strategy, true)
		for i := range min(len(inc), len(full)) {
			if inc[i] != full[i] {
				t.Fatalf("seed %d: event %d differs:\nincremental: %s\nfull:        %s", seed, i, inc[i], full[i])
			}
		}
		if len(inc) != len(full) {
			t.Fatalf("seed %d: %d events incremental, %d full", seed, len(inc), len(full))
		}
	})
}

// TestBigRunIsNotStarved: a cluster kept busy by a continuous stream of
// 1-GPU runs; an 8-GPU run submitted in the middle must start within a
// bounded number of rounds, for every seed.
func TestBigRunIsNotStarved(t *testing.T) {
	t.Parallel()
	const (
		maxDuration = 6  // rounds a small run lasts, at most
		bound       = 40 // rounds the big run may wait, at most
	)
	seeds := 100
	if testing.Short() {
		seeds = 10
	}
	worst := 0
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 8))
		var nodes []Node
		for i := range 4 {
			nodes = append(nodes, gpuNode(t, fmt.Sprintf("n%d", i), "H100:8"))
		}
		s := newScheduler(t, Config{}, nodes...)
		small := request(t, "1", "1Gi", "H100:1")
		ends := map[int][]string{}
		started := -1
		for round := 0; round < 200 && started < 0; round++ {
			for _, id := range ends[round] {
				s.Release(id)
			}
			// About 9 GPUs' worth of new work per round against 32 GPUs
			// whose runs last 3.5 rounds on average: the queue never drains.
			for i := range 7 + rng.IntN(5) {
				enqueue(t, s, Run{ID: fmt.Sprintf("s%d-%d", round, i), Request: small})
			}
			if round == 20 {
				enqueue(t, s, Run{ID: "big", Request: request(t, "8", "", "H100:8")})
			}
			for _, b := range s.Schedule() {
				if b.RunID == "big" {
					started = round - 20
					continue
				}
				end := round + 1 + rng.IntN(maxDuration)
				ends[end] = append(ends[end], b.RunID)
			}
		}
		if started < 0 || started > bound {
			t.Fatalf("seed %d: the 8-GPU run started after %d rounds (bound %d; -1: never)", seed, started, bound)
		}
		worst = max(worst, started)
	}
	t.Logf("worst wait of the 8-GPU run: %d rounds", worst)
}
