package scheduler

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/tasks"
)

const gi = int64(1) << 30

func request(t testing.TB, cpu, mem, gpu string, fallbacks ...string) tasks.Request {
	t.Helper()
	req, err := tasks.Resources{CPU: cpu, Memory: mem, GPU: gpu, GPUFallbacks: fallbacks}.Parse()
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// gpuNode is a healthy node with 64 CPUs, 512Gi and the declared GPUs.
func gpuNode(t testing.TB, id, gpus string) Node {
	t.Helper()
	return Node{ID: id, MilliCPU: 64000, MemoryBytes: 512 * gi, Devices: declaredGPUs(t, gpus), Healthy: true}
}

// declaredGPUs numbers whole, healthy GPUs from 0 as a node declares them
// ("H100:4,T4:1"). The real parser of TASKGATE_NODE_GPUS is in package
// discovery, which imports this one.
func declaredGPUs(t testing.TB, spec string) []Device {
	t.Helper()
	var devs []Device
	for entry := range strings.SplitSeq(spec, ",") {
		g, err := tasks.ParseGPU(entry)
		if err != nil || g.Type == "" || g.MIG != "" {
			t.Fatalf("declared GPUs %q: %v", entry, err)
		}
		for range g.Count {
			i := len(devs)
			devs = append(devs, Device{Type: CanonicalDeviceType(g.Type), Index: i, Parent: i, Healthy: true})
		}
	}
	return devs
}

// migNode is a node whose A100-80GB GPUs are each split into seven 1g.10gb.
func migNode(id string, gpus int) Node {
	n := Node{ID: id, MilliCPU: 64000, MemoryBytes: 512 * gi, Healthy: true}
	for g := range gpus {
		for m := range 7 {
			n.Devices = append(n.Devices, Device{Type: "A100-80GB", MIG: "1g.10gb", Index: m, Parent: g, Healthy: true,
				UUID: fmt.Sprintf("MIG-%d-%d", g, m)})
		}
	}
	return n
}

func cpuNode(id string, cores int64) Node {
	return Node{ID: id, MilliCPU: cores * 1000, MemoryBytes: 256 * gi, Healthy: true}
}

func newScheduler(t testing.TB, cfg Config, nodes ...Node) *Scheduler {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if _, err := s.UpsertNode(n); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func enqueue(t testing.TB, s *Scheduler, runs ...Run) {
	t.Helper()
	for _, r := range runs {
		if err := s.Enqueue(r); err != nil {
			t.Fatal(err)
		}
	}
}

// placed maps run ID to "node:option:device indexes" for compact checks.
func placed(bs []Binding) map[string]string {
	m := make(map[string]string, len(bs))
	for _, b := range bs {
		idx := make([]int, len(b.Devices))
		for i, d := range b.Devices {
			idx[i] = d.Index
		}
		m[b.RunID] = fmt.Sprintf("%s:%d:%v", b.NodeID, b.Option, idx)
	}
	return m
}

func wantReason(t *testing.T, s *Scheduler, runID, want string) {
	t.Helper()
	_, reason, ok := s.Position(runID)
	if !ok || reason != want {
		t.Fatalf("run %s: reason %q (waiting %v), want %q", runID, reason, ok, want)
	}
}

// fill binds n 1-GPU runs of the given type, IDs prefix0.., and checks they all bound.
func fill(t *testing.T, s *Scheduler, prefix, gpu string, n int) {
	t.Helper()
	for i := range n {
		enqueue(t, s, Run{ID: fmt.Sprintf("%s%d", prefix, i), Request: request(t, "", "", gpu)})
	}
	if got := len(s.Schedule()); got != n {
		t.Fatalf("fill: %d bound, want %d", got, n)
	}
}

func TestGangAllocationOnOneNode(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{}, gpuNode(t, "a", "H100:4"), gpuNode(t, "b", "H100:4"))
	fill(t, s, "small", "H100:1", 8)
	// Free two H100 on each node: four in all, but not on one node.
	for _, id := range []string{"small0", "small1", "small4", "small5"} {
		s.Release(id)
	}
	enqueue(t, s, Run{ID: "gang", Request: request(t, "", "", "H100:4")})
	if got := s.Schedule(); len(got) != 0 {
		t.Fatalf("gang run split across nodes: %v", got)
	}
	wantReason(t, s, "gang", "waiting for 4 free H100 on one node")
	s.Release("small2")
	s.Release("small3")
	got := placed(s.Schedule())
	if len(got) != 1 || got["gang"] == "" {
		t.Fatalf("gang run not placed after its node emptied: %v", got)
	}
}

func TestGangAllocationOfOneType(t *testing.T) {
	t.Parallel()
	// Two A100-40GB and two A100-80GB on one node: "A100:4" is four of the
	// family, but never a mix of models.
	devs := []Device{
		{Type: "A100-40GB", Index: 0, Healthy: true}, {Type: "A100-40GB", Index: 1, Healthy: true},
		{Type: "A100-80GB", Index: 2, Healthy: true}, {Type: "A100-80GB", Index: 3, Healthy: true},
	}
	s := newScheduler(t, Config{}, Node{ID: "mixed", MilliCPU: 8000, MemoryBytes: 64 * gi, Devices: devs, Healthy: true})
	enqueue(t, s, Run{ID: "four", Request: request(t, "", "", "A100:4")}, Run{ID: "two", Request: request(t, "", "", "A100:2")})
	got := placed(s.Schedule())
	want := map[string]string{"two": "mixed:0:[0 1]"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("bindings %v, want %v", got, want)
	}
	wantReason(t, s, "four", "no node has 4 A100")
}

func TestFallbacksInOrder(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{}, gpuNode(t, "h", "H100:8"), gpuNode(t, "a", "A100-80GB:8"))
	req := request(t, "", "", "H100:8", "A100-80GB:8", "A100-80GB:4")
	enqueue(t, s,
		Run{ID: "first", Request: req},
		Run{ID: "second", Request: req},
		Run{ID: "third", Request: req},
		Run{ID: "fourth", Request: req},
	)
	got := placed(s.Schedule())
	want := map[string]string{
		"first":  "h:0:[0 1 2 3 4 5 6 7]",
		"second": "a:1:[0 1 2 3 4 5 6 7]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("bindings %v, want %v", got, want)
	}
	// The reason is the first alternative's.
	wantReason(t, s, "third", "waiting for 8 free H100 on one node")
	s.Release("second")
	got = placed(s.Schedule())
	// third takes its second alternative; fourth still waits.
	if got["third"] != "a:1:[0 1 2 3 4 5 6 7]" || len(got) != 1 {
		t.Fatalf("bindings %v, want third on a with option 1", got)
	}
}

func TestFallbackReasonWhenFirstTypeIsMissing(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{}, gpuNode(t, "a", "A100-80GB:4"))
	fill(t, s, "x", "A100-80GB:1", 2)
	enqueue(t, s,
		Run{ID: "waits", Request: request(t, "", "", "H100:4", "A100-80GB:4")},
		Run{ID: "never", Request: request(t, "", "", "H100:1", "L4:1")},
		Run{ID: "toobig", Request: request(t, "", "", "A100-80GB:8")},
	)
	s.Schedule()
	wantReason(t, s, "waits", "waiting for 4 free A100-80GB on one node")
	wantReason(t, s, "never", "no node has H100 or L4")
	wantReason(t, s, "toobig", "no node has 8 A100-80GB")
}

func TestMIGPartitionsAreDevices(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{}, migNode("m", 1))
	for i := range 8 {
		enqueue(t, s, Run{ID: fmt.Sprintf("mig%d", i), Request: request(t, "", "", "A100:1g.10gb")})
	}
	enqueue(t, s, Run{ID: "whole", Request: request(t, "", "", "A100:1")},
		Run{ID: "other", Request: request(t, "", "", "A100:2g.20gb")})
	bs := s.Schedule()
	if len(bs) != 7 {
		t.Fatalf("%d MIG runs bound, want 7", len(bs))
	}
	seen := map[string]bool{}
	for _, b := range bs {
		if len(b.Devices) != 1 || b.Devices[0].MIG != "1g.10gb" || b.Option != 0 {
			t.Fatalf("binding %+v is not one 1g.10gb partition", b)
		}
		if seen[b.Devices[0].UUID] {
			t.Fatalf("partition %s given twice", b.Devices[0].UUID)
		}
		seen[b.Devices[0].UUID] = true
	}
	wantReason(t, s, "mig7", "waiting for a free A100-80GB MIG 1g.10gb on one node")
	wantReason(t, s, "whole", "no node has A100")
	wantReason(t, s, "other", "no node has A100-80GB MIG 2g.20gb")
}

func TestBinPackAndSpread(t *testing.T) {
	t.Parallel()
	tests := []struct {
		strategy Strategy
		want     string
	}{
		{BinPack, "a"}, // the fullest node that fits
		{Spread, "b"},  // the emptiest
	}
	for _, tt := range tests {
		t.Run(tt.strategy.String(), func(t *testing.T) {
			t.Parallel()
			s := newScheduler(t, Config{Strategy: tt.strategy}, gpuNode(t, "a", "H100:8"))
			fill(t, s, "x", "H100:2", 1)
			if _, err := s.UpsertNode(gpuNode(t, "b", "H100:8")); err != nil {
				t.Fatal(err)
			}
			enqueue(t, s, Run{ID: "r", Request: request(t, "", "", "H100:1")})
			bs := s.Schedule()
			if len(bs) != 1 || bs[0].NodeID != tt.want {
				t.Fatalf("bindings %+v, want r on %s", bs, tt.want)
			}
		})
	}
}

func TestPriorityThenFIFO(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{Reservations: -1}, gpuNode(t, "a", "H100:1"))
	enqueue(t, s,
		Run{ID: "old-low", Request: request(t, "", "", "H100:1")},
		Run{ID: "new-high", Request: request(t, "", "", "H100:1"), Priority: 10},
		Run{ID: "newer-high", Request: request(t, "", "", "H100:1"), Priority: 10},
	)
	var order []string
	for range 3 {
		bs := s.Schedule()
		if len(bs) != 1 {
			t.Fatalf("round bound %d runs, want 1", len(bs))
		}
		order = append(order, bs[0].RunID)
		s.Release(bs[0].RunID)
	}
	want := []string{"new-high", "newer-high", "old-low"}
	if !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

func TestHeadReservesNodeWhileSmallRunsBackfill(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{}, gpuNode(t, "a", "H100:8"), gpuNode(t, "b", "H100:8"))
	fill(t, s, "busy", "H100:1", 16) // busy0..7 on one node, busy8..15 on the other
	nodeOf := func(id string) string { b, _ := s.BindingOf(id); return b.NodeID }
	big := Run{ID: "big", Request: request(t, "", "", "H100:8")}
	enqueue(t, s, big)
	// Free two devices on busy0's node, one on the other.
	first := nodeOf("busy0")
	s.Release("busy0")
	s.Release("busy1")
	other := nodeOf("busy15")
	s.Release("busy15")
	enqueue(t, s, Run{ID: "small1", Request: request(t, "", "", "H100:1")},
		Run{ID: "small2", Request: request(t, "", "", "H100:1")})
	got := placed(s.Schedule())
	// big reserves the node closest to 8 free (two free); small1 backfills
	// the other node; small2 would need the reserved node and waits.
	if len(got) != 1 || got["small1"] == "" || got["small1"][:1] != other {
		t.Fatalf("bindings %v, want only small1 on %s", got, other)
	}
	info := s.Waiting()
	if info[0].RunID != "big" || info[0].ReservedNode != first || info[0].Reason != "waiting for 8 free H100 on one node" {
		t.Fatalf("head %+v, want big reserving %s", info[0], first)
	}
	wantReason(t, s, "small2", "waiting for 1 free H100 on one node")
	// Runs on the reserved node finish one by one; nothing else lands there,
	// so big starts once the last one ends.
	for i := 2; i < 7; i++ {
		s.Release(fmt.Sprintf("busy%d", i))
		if got := placed(s.Schedule()); len(got) != 0 {
			t.Fatalf("after busy%d finished: %v bound on the reserved node", i, got)
		}
	}
	s.Release("busy7") // the last run on `first`
	got = placed(s.Schedule())
	if got["big"] != first+":0:[0 1 2 3 4 5 6 7]" {
		t.Fatalf("bindings %v, want big on %s", got, first)
	}
}

func TestWithoutReservationsSmallRunsTakeTheNode(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{Reservations: -1}, gpuNode(t, "a", "H100:8"))
	fill(t, s, "busy", "H100:1", 8)
	enqueue(t, s, Run{ID: "big", Request: request(t, "", "", "H100:8")},
		Run{ID: "small", Request: request(t, "", "", "H100:1")})
	s.Release("busy0")
	got := placed(s.Schedule())
	if got["small"] == "" {
		t.Fatalf("bindings %v: without reservations small should backfill", got)
	}
	if w := s.Waiting(); w[0].ReservedNode != "" {
		t.Fatalf("reservation made while disabled: %+v", w[0])
	}
}

func TestProjectQuota(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{ProjectGPUQuota: map[string]int{"research": 8}},
		gpuNode(t, "a", "H100:8"), gpuNode(t, "b", "H100:8"))
	enqueue(t, s,
		Run{ID: "r1", Project: "research", Request: request(t, "", "", "H100:4")},
		Run{ID: "r2", Project: "research", Request: request(t, "", "", "H100:4")},
		Run{ID: "r3", Project: "research", Request: request(t, "", "", "H100:2")},
		Run{ID: "cpu", Project: "research", Request: request(t, "1", "", "")},
		Run{ID: "p1", Project: "prod", Request: request(t, "", "", "H100:8")},
	)
	got := placed(s.Schedule())
	for _, id := range []string{"r1", "r2", "cpu", "p1"} {
		if got[id] == "" {
			t.Fatalf("bindings %v: %s not bound", got, id)
		}
	}
	wantReason(t, s, "r3", "project quota of 8 GPUs reached")
	sum := s.QueueSummary()
	wantProjects := []ProjectSummary{
		{Project: "prod", Bound: 1, GPUsInUse: 8},
		{Project: "research", Waiting: 1, Bound: 3, GPUsInUse: 8, GPUQuota: 8},
	}
	if !reflect.DeepEqual(sum.Projects, wantProjects) || sum.Reasons[0] != (ReasonCount{"project quota of 8 GPUs reached", 1}) {
		t.Fatalf("summary %+v", sum)
	}
	s.Release("r1")
	if got := placed(s.Schedule()); got["r3"] == "" {
		t.Fatalf("r3 not bound once the project was under quota: %v", got)
	}
}

func TestQuotaAppliesPerAlternative(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{ProjectGPUQuota: map[string]int{"p": 4}}, gpuNode(t, "a", "H100:8"))
	enqueue(t, s, Run{ID: "r", Project: "p", Request: request(t, "", "", "H100:8", "H100:4")})
	got := placed(s.Schedule())
	if got["r"] != "a:1:[0 1 2 3]" {
		t.Fatalf("bindings %v, want the 4-GPU alternative", got)
	}
}

func TestCPUOnlyRunsStayOffGPUNodes(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{}, gpuNode(t, "gpu", "H100:8"), cpuNode("cpu", 4))
	enqueue(t, s,
		Run{ID: "c1", Request: request(t, "2", "1Gi", "")},
		Run{ID: "c2", Request: request(t, "2", "1Gi", "")},
		Run{ID: "c3", Request: request(t, "2", "1Gi", "")},
		Run{ID: "huge", Request: request(t, "1000", "", "")},
	)
	got := placed(s.Schedule())
	want := map[string]string{"c1": "cpu:0:[]", "c2": "cpu:0:[]", "c3": "gpu:0:[]"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("bindings %v, want %v", got, want)
	}
	wantReason(t, s, "huge", "no node has 1000 CPU")
}

func TestCPUAndMemoryReasons(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{}, gpuNode(t, "a", "H100:8"))
	enqueue(t, s,
		Run{ID: "hog", Request: request(t, "60", "", "")},
		Run{ID: "gpu", Request: request(t, "8", "16Gi", "H100:4")},
		Run{ID: "never", Request: request(t, "100", "", "H100:1")},
		Run{ID: "mem", Request: request(t, "", "2Ti", "")},
	)
	got := placed(s.Schedule())
	if got["hog"] == "" || len(got) != 1 {
		t.Fatalf("bindings %v, want only hog", got)
	}
	wantReason(t, s, "gpu", "waiting for 8 CPU and 16Gi memory beside 4 free H100 on one node")
	wantReason(t, s, "never", "no node has 1 H100 with 100 CPU")
	wantReason(t, s, "mem", "no node has 2Ti memory")
}

func TestUnhealthyAndRemovedNodesRequeue(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{}, gpuNode(t, "a", "H100:8"))
	enqueue(t, s, Run{ID: "r1", Request: request(t, "", "", "H100:4"), Project: "p"},
		Run{ID: "r2", Request: request(t, "", "", "H100:4"), Project: "p"})
	if got := len(s.Schedule()); got != 2 {
		t.Fatalf("%d bound, want 2", got)
	}
	requeued := s.SetNodeHealth("a", false)
	if !slices.Equal(requeued, []string{"r1", "r2"}) {
		t.Fatalf("requeued %v", requeued)
	}
	pos, reason, ok := s.Position("r1")
	if !ok || pos != 1 || reason != "requeued: node a became unhealthy" {
		t.Fatalf("r1 at %d %q %v", pos, reason, ok)
	}
	s.Schedule()
	wantReason(t, s, "r1", "no node has H100")
	if got := s.QueueSummary().Projects[0].GPUsInUse; got != 0 {
		t.Fatalf("GPUs in use after requeue: %d", got)
	}
	if _, err := s.UpsertNode(gpuNode(t, "b", "H100:4")); err != nil {
		t.Fatal(err)
	}
	got := placed(s.Schedule())
	if got["r1"] != "b:0:[0 1 2 3]" || len(got) != 1 {
		t.Fatalf("bindings %v, want r1 on b", got)
	}
	if requeued := s.RemoveNode("b"); !slices.Equal(requeued, []string{"r1"}) {
		t.Fatalf("RemoveNode requeued %v", requeued)
	}
	wantReason(t, s, "r1", "requeued: node b was removed")
	s.SetNodeHealth("a", true)
	if got := len(s.Schedule()); got != 2 {
		t.Fatalf("%d bound after a recovered, want 2", got)
	}
}

func TestUpsertNodeKeepsOrRequeuesRuns(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{}, gpuNode(t, "a", "H100:4"))
	enqueue(t, s, Run{ID: "low", Request: request(t, "", "", "H100:2")}, Run{ID: "high", Request: request(t, "", "", "H100:2")})
	s.Schedule()
	// Same inventory with a new label: both runs keep their devices.
	n := gpuNode(t, "a", "H100:4")
	n.Labels = map[string]string{"zone": "z1"}
	if requeued, err := s.UpsertNode(n); err != nil || len(requeued) != 0 {
		t.Fatalf("UpsertNode: %v %v", requeued, err)
	}
	// Device 3 turns unhealthy: the run holding it goes back to the queue.
	n.Devices[3].Healthy = false
	requeued, err := s.UpsertNode(n)
	if err != nil || !slices.Equal(requeued, []string{"high"}) {
		t.Fatalf("UpsertNode: %v %v", requeued, err)
	}
	info := s.Snapshot()[0]
	if info.Free["H100"] != 1 || info.Labels["zone"] != "z1" || !slices.Equal(info.Runs, []string{"low"}) {
		t.Fatalf("snapshot %+v", info)
	}
	s.Schedule()
	wantReason(t, s, "high", "waiting for 2 free H100 on one node")
}

func TestPositionsAndCancel(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{}, gpuNode(t, "a", "H100:1"))
	for i := range 5 {
		enqueue(t, s, Run{ID: fmt.Sprintf("r%d", i), Request: request(t, "", "", "H100:1")})
	}
	if pos, reason, ok := s.Position("r3"); pos != 4 || reason != reasonNextRound || !ok {
		t.Fatalf("before a round: r3 at %d %q %v", pos, reason, ok)
	}
	s.Schedule() // r0 binds
	if _, _, ok := s.Position("r0"); ok {
		t.Fatal("a bound run has a queue position")
	}
	if !s.Cancel("r2") || s.Cancel("r2") {
		t.Fatal("Cancel of a waiting run")
	}
	for want, id := range []string{"r1", "r3", "r4"} {
		if pos, _, ok := s.Position(id); !ok || pos != want+1 {
			t.Fatalf("%s at %d, want %d", id, pos, want+1)
		}
	}
	if !s.Cancel("r0") {
		t.Fatal("Cancel of a bound run")
	}
	if s.Release("r0") || s.Release("r1") {
		t.Fatal("Release of a cancelled or waiting run")
	}
	if got := placed(s.Schedule()); got["r1"] == "" {
		t.Fatalf("r1 not bound after r0 was cancelled: %v", got)
	}
}

func TestMaxBindingsPerRound(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{MaxBindingsPerRound: 2}, gpuNode(t, "a", "H100:8"))
	for i := range 3 {
		enqueue(t, s, Run{ID: fmt.Sprintf("r%d", i), Request: request(t, "", "", "H100:1")})
	}
	if got := len(s.Schedule()); got != 2 {
		t.Fatalf("%d bound, want 2", got)
	}
	wantReason(t, s, "r2", reasonNextRound)
}

func TestEnqueueErrors(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{})
	enqueue(t, s, Run{ID: "dup"})
	tests := []struct {
		name string
		run  Run
		err  error
	}{
		{"empty id", Run{}, ErrInvalidRun},
		{"duplicate", Run{ID: "dup"}, ErrDuplicateRun},
		{"zero count", Run{ID: "z", Request: tasks.Request{GPUs: []tasks.GPURequest{{Type: "H100"}}}}, ErrInvalidRun},
		{"mig count", Run{ID: "m", Request: tasks.Request{GPUs: []tasks.GPURequest{{Type: "H100", MIG: "1g.10gb", Count: 2}}}}, ErrInvalidRun},
		{"negative cpu", Run{ID: "c", Request: tasks.Request{MilliCPU: -1}}, ErrInvalidRun},
		{"too many alternatives", Run{ID: "a", Request: tasks.Request{GPUs: make([]tasks.GPURequest, 9)}}, ErrInvalidRun},
	}
	for _, tt := range tests {
		if err := s.Enqueue(tt.run); !errors.Is(err, tt.err) {
			t.Errorf("%s: Enqueue error %v, want %v", tt.name, err, tt.err)
		}
	}
}

func TestConfigAndNodeErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{{Strategy: 7}, {ProjectGPUQuota: map[string]int{"p": -1}}, {MaxBindingsPerRound: -1}} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) error %v", cfg, err)
		}
	}
	s := newScheduler(t, Config{})
	for _, n := range []Node{
		{},
		{ID: "neg", MilliCPU: -1},
		{ID: "notype", Devices: []Device{{Index: 0}}},
		{ID: "dup", Devices: []Device{{Type: "T4", Index: 0}, {Type: "T4", Index: 0}}},
		{ID: "dup-spelling", Devices: []Device{{Type: "a100-80g", Index: 0}, {Type: "A100-80GB", Index: 0}}},
	} {
		if _, err := s.UpsertNode(n); !errors.Is(err, ErrInvalidNode) {
			t.Errorf("UpsertNode(%+v) error %v", n, err)
		}
	}
}

func TestAnyTypeAndUnknownDevices(t *testing.T) {
	t.Parallel()
	n := Node{ID: "g", MilliCPU: 8000, MemoryBytes: 64 * gi, Healthy: true, Devices: []Device{
		{Type: "NVIDIA GeForce RTX 4090", Index: 0, Healthy: true},
		{Type: "NVIDIA GeForce RTX 4090", Index: 1, Healthy: true},
	}}
	s := newScheduler(t, Config{}, n)
	enqueue(t, s, Run{ID: "any", Request: request(t, "", "", "2")}, Run{ID: "t4", Request: request(t, "", "", "T4:1")})
	got := placed(s.Schedule())
	if got["any"] != "g:0:[0 1]" {
		t.Fatalf("bindings %v", got)
	}
	wantReason(t, s, "t4", "no node has T4")
	enqueue(t, s, Run{ID: "any2", Request: request(t, "", "", "1")})
	s.Schedule()
	wantReason(t, s, "any2", "waiting for 1 free GPU on one node")
}

func TestReservationIsSticky(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{}, gpuNode(t, "a", "H100:8"), gpuNode(t, "b", "H100:8"))
	fill(t, s, "busy", "H100:1", 16)
	enqueue(t, s, Run{ID: "big", Request: request(t, "", "", "H100:8")})
	reserved := func() string { t.Helper(); return s.Waiting()[0].ReservedNode }
	nodeOf := func(id string) string { b, _ := s.BindingOf(id); return b.NodeID }
	s.Release("busy0")
	s.Release("busy8")
	s.Schedule()
	first := reserved()
	if first == "" {
		t.Fatal("no reservation")
	}
	// Both nodes have one free H100; the reservation stays where it is,
	// round after round, whatever the buckets' order.
	for range 3 {
		s.Schedule()
		if got := reserved(); got != first {
			t.Fatalf("reservation hopped from %s to %s with equal free devices", first, got)
		}
	}
	// The other node gets strictly closer to eight free: it takes over.
	for _, id := range []string{"busy1", "busy9", "busy2", "busy10"} {
		if nodeOf(id) != first {
			s.Release(id)
			break
		}
	}
	s.Schedule()
	if got := reserved(); got == first || got == "" {
		t.Fatalf("reservation stayed on %s though the other node has more free", got)
	}
}

func TestShapesAreSharedAndForgottenWithTheirRuns(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, Config{}, gpuNode(t, "a", "H100:1"), cpuNode("c", 4))
	enqueue(t, s,
		Run{ID: "g0", Request: request(t, "", "", "H100:1", "A100:1")},
		Run{ID: "g1", Request: request(t, "", "", "H100:1", "A100:1")},
		Run{ID: "g2", Request: request(t, "", "", "H100:1")},
		Run{ID: "c0", Request: request(t, "1", "", "")},
	)
	if got := len(s.shapes); got != 3 { // H100:1, A100:1, 1 CPU
		t.Fatalf("%d shapes, want 3", got)
	}
	if s.runs["g0"].run.req.opts[0].memo != s.runs["g2"].run.req.opts[0].memo {
		t.Fatal("two runs needing one H100 do not share its shape")
	}
	if got := placed(s.Schedule()); len(got) != 2 || got["g0"] == "" || got["c0"] == "" {
		t.Fatalf("first round bound %v, want g0 and c0", got)
	}
	// g1 and g2 wait on the H100 shape the round found full; after g0
	// releases it, the next round must look again rather than trust it.
	wantReason(t, s, "g2", "waiting for 1 free H100 on one node")
	s.Release("g0")
	if got := placed(s.Schedule()); len(got) != 1 || got["g1"] == "" {
		t.Fatalf("after a release, round bound %v, want g1", got)
	}
	s.Cancel("g2")
	s.Release("g1")
	s.Release("c0")
	if len(s.runs) != 0 || len(s.shapes) != 0 {
		t.Fatalf("%d runs and %d shapes left after every run went", len(s.runs), len(s.shapes))
	}
}
