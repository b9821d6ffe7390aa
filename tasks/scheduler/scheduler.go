package scheduler

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// Scheduler places runs on nodes. It holds the cluster's state in memory and
// changes it only through its methods; it does no I/O, starts no goroutines
// and is not safe for concurrent use (its owner serialises calls, usually
// behind the leader lease). The same sequence of calls always gives the same
// bindings.
type Scheduler struct {
	cfg Config

	nodes map[string]*nodeState
	// cpuOnly and gpuNodes index healthy nodes by free cores: CPU-only runs
	// look at cpuOnly first so GPU nodes stay free for GPU runs.
	cpuOnly, gpuNodes levelIndex

	pools     map[poolKey]*pool
	poolOrder []*pool // creation order, for deterministic iteration
	// matches caches which pools serve a internedRequest's type and MIG profile;
	// cleared when a pool appears.
	matches map[poolKey][]*pool

	runs map[string]*runState
	// queue holds the waiting runs sorted by runLess: a run's position is
	// its index, found by binary search.
	queue   []*runState
	lastSeq uint64

	projectGPUs map[string]int
	// projectRuns counts each project's waiting and bound runs as they
	// change, so that QueueSummary does not visit every run for them.
	projectRuns map[string]*projectCount
	// summaries numbers the QueueSummary walks (internedRequest.settled).
	summaries uint64

	// shapes interns the shapes of the known runs' options, so that a
	// round's memo of what did not fit is a field of the shape rather than
	// a map lookup per run; a shape goes when its last run does.
	shapes map[shapeKey]*shape
	// requests interns the requests of the known runs (internedRequest.go).
	requests map[string]*internedRequest
	keyBuf   []byte

	// Per-round state.
	reserved []*nodeState
	// round numbers the memo: a shape's failure holds for the round it was
	// learnt in, and for the rounds that resume it.
	round       uint64
	quotaReason map[int]string
	// walked is how many runs at the head of the queue the last round left
	// waiting with nothing changed since that could place them: no capacity
	// freed, no node changed, no run inserted or removed before them. The
	// next round starts after them, with the reservations they hold
	// (resLeft more may be made) and its memo of what does not fit, and so
	// decides as a full round would. Zero means a full round.
	walked, resLeft int
	// fullRounds turns the above off, and the stop below: the
	// equivalence test's reference.
	fullRounds bool

	// The bounded round (walk.go): waiting runs' shapes, of them failed
	// in this round, and of those impossible; the healthy nodes.
	waitingShapes, failedShapes, impossibleShapes int
	indexedNodes                                  int
	// stopAt is the first run the last round did not look at (nil: it
	// looked at every run): stopCut when it reached MaxBindingsPerRound,
	// else the rest were hopeless; stopGPUs the projects' devices then.
	// explicit holds runs given a reason since (requeued), which stands.
	stopAt   *runState
	stopCut  bool
	stopGPUs map[string]int
	explicit map[*runState]struct{}

	// observe, when set by a benchmark, receives the duration of every
	// run's placement decision.
	observe func(time.Duration)
}

type nodeState struct {
	node             Node
	freeCPU, freeMem int64
	devs             []devState
	pools            []*nodePool
	cpu              slot
	cpuIdx           *levelIndex
	indexed          bool
	reservedBy       *runState
	bound            map[string]*runState
}

type devState struct {
	Device
	runID string
	np    *nodePool
}

// runState is a run the scheduler knows: a million of them wait in a
// large backlog, so it holds only what placing the run needs (see
// runInfo), and its options are its internedRequest's, shared.
type runState struct {
	run runInfo
	// reason is why the last round left the run waiting.
	reason string
	// reservedNode is this round's reservation; prevReserved the node
	// reserved last round, preferred again so a reservation does not hop.
	reservedNode *nodeState
	prevReserved *nodeState
	binding      *boundState
}

// runInfo is what the scheduler keeps of a Run: Submitted is dropped,
// and the internedRequest is interned (see internedRequest).
type runInfo struct {
	ID       string
	Project  string
	Priority int
	Seq      uint64
	req      *internedRequest
}

// option is one resolved alternative of a run's internedRequest. A CPU-only run has
// one option with count 0.
type option struct {
	shape shapeKey
	req   tasks.GPURequest
	// memo is the shape's interned entry, shared by every run needing it.
	memo *shape
}

// shapeKey identifies what an option needs. Within a round, free resources
// only shrink, so a shape that did not fit once will not fit again: the
// failure is remembered per shape.
type shapeKey struct {
	pk    poolKey
	count int
	cpu   int64
	mem   int64
}

// shape is an interned shapeKey with the memo of the round that last
// found it does not fit.
type shape struct {
	key shapeKey
	// refs counts the options of known runs that need it.
	refs int
	// fail is why it did not fit in round `round`; stale in any other.
	fail  *failure
	round uint64
	// waiting counts the waiting runs that need it (walk.go).
	waiting int
}

type boundState struct {
	node   *nodeState
	option int
	devs   []int
	gpus   int
}

// New returns an empty scheduler.
func New(cfg Config) (*Scheduler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.ProjectGPUQuota = maps.Clone(cfg.ProjectGPUQuota)
	return &Scheduler{
		cfg:         cfg,
		nodes:       make(map[string]*nodeState),
		pools:       make(map[poolKey]*pool),
		matches:     make(map[poolKey][]*pool),
		runs:        make(map[string]*runState),
		projectGPUs: make(map[string]int),
		projectRuns: make(map[string]*projectCount),
		shapes:      make(map[shapeKey]*shape),
		requests:    make(map[string]*internedRequest),
		quotaReason: make(map[int]string),
		explicit:    make(map[*runState]struct{}),
	}, nil
}

// CanonicalDeviceType turns a declared or detected type into its catalogue
// name, as the scheduler matches it. The A100 family becomes A100-40GB: a
// node that only says "A100" must not be promised to runs that need 80 GB.
func CanonicalDeviceType(t string) string {
	a, ok := tasks.LookupAccelerator(t)
	if !ok {
		return strings.TrimSpace(t)
	}
	if a.IsFamily() {
		return a.Members[0]
	}
	return a.Name
}

// normalizeDevice spells d's type and profile the catalogue's way; a whole
// GPU is its own parent.
func normalizeDevice(d Device) Device {
	d.Type = CanonicalDeviceType(d.Type)
	d.MIG = strings.ToLower(strings.TrimSpace(d.MIG))
	if d.MIG == "" {
		d.Parent = d.Index
	}
	return d
}

// deviceKey identifies a device across inventory updates: its UUID when
// known, else its kind and indexes.
func deviceKey(d Device) string {
	if d.UUID != "" {
		return "uuid:" + d.UUID
	}
	return d.Type + "/" + d.MIG + "/" + strconv.Itoa(d.Parent) + "/" + strconv.Itoa(d.Index)
}

func validateNode(n *Node) error {
	if n.ID == "" {
		return fmt.Errorf("%w: empty ID", ErrInvalidNode)
	}
	if n.MilliCPU < 0 || n.MemoryBytes < 0 {
		return fmt.Errorf("%w: node %q: negative CPU or memory", ErrInvalidNode, n.ID)
	}
	seen := make(map[string]bool, len(n.Devices))
	for i, d := range n.Devices {
		if strings.TrimSpace(d.Type) == "" {
			return fmt.Errorf("%w: node %q: device %d has no type", ErrInvalidNode, n.ID, i)
		}
		k := deviceKey(normalizeDevice(d))
		if seen[k] {
			return fmt.Errorf("%w: node %q: device %s listed twice", ErrInvalidNode, n.ID, k)
		}
		seen[k] = true
	}
	return nil
}

func (s *Scheduler) pool(k poolKey) *pool {
	if p, ok := s.pools[k]; ok {
		return p
	}
	p := &pool{key: k}
	s.pools[k] = p
	s.poolOrder = append(s.poolOrder, p)
	clear(s.matches)
	return p
}

// newNodeState builds the state of a node with nothing bound.
func (s *Scheduler) newNodeState(n Node) *nodeState {
	n.Labels = maps.Clone(n.Labels)
	n.Devices = slices.Clone(n.Devices)
	ns := &nodeState{
		node:    n,
		freeCPU: n.MilliCPU,
		freeMem: n.MemoryBytes,
		devs:    make([]devState, len(n.Devices)),
		bound:   make(map[string]*runState),
	}
	ns.cpu = slot{node: ns, pos: -1}
	for i := range n.Devices {
		n.Devices[i] = normalizeDevice(n.Devices[i])
		d := &n.Devices[i]
		k := poolKey{typ: d.Type, mig: d.MIG}
		var np *nodePool
		for _, p := range ns.pools {
			if p.pool.key == k {
				np = p
				break
			}
		}
		if np == nil {
			np = &nodePool{pool: s.pool(k)}
			np.slot = slot{node: ns, np: np, pos: -1}
			ns.pools = append(ns.pools, np)
		}
		ns.devs[i] = devState{Device: *d, np: np}
		if d.Healthy {
			np.total++
			np.free = append(np.free, i)
		}
	}
	if len(n.Devices) == 0 {
		ns.cpuIdx = &s.cpuOnly
	} else {
		ns.cpuIdx = &s.gpuNodes
	}
	return ns
}

func (s *Scheduler) index(n *nodeState) {
	if n.indexed {
		return
	}
	n.indexed = true
	s.indexedNodes++
	for _, np := range n.pools {
		np.pool.idx.insert(&np.slot, len(np.free))
		np.pool.addTotal(np.total, 1)
	}
	n.cpuIdx.insert(&n.cpu, cpuLevel(n.freeCPU))
}

func (s *Scheduler) unindex(n *nodeState) {
	if !n.indexed {
		return
	}
	n.indexed = false
	s.indexedNodes--
	for _, np := range n.pools {
		np.pool.idx.remove(&np.slot)
		np.pool.addTotal(np.total, -1)
	}
	n.cpuIdx.remove(&n.cpu)
	if r := n.reservedBy; r != nil {
		r.reservedNode = nil
		n.reservedBy = nil
	}
}

// reindex moves n to the buckets matching its free resources.
func (n *nodeState) reindex() {
	if !n.indexed {
		return
	}
	n.cpuIdx.set(&n.cpu, cpuLevel(n.freeCPU))
}

func (np *nodePool) reindex() {
	if np.node.indexed {
		np.pool.idx.set(&np.slot, len(np.free))
	}
}

// UpsertNode adds a node or replaces its inventory. Runs bound to it keep
// their devices when those are still listed and healthy; the others go back
// to the queue, and their IDs are returned.
func (s *Scheduler) UpsertNode(n Node) (requeued []string, err error) {
	s.walked = 0
	if err := validateNode(&n); err != nil {
		return nil, err
	}
	ns := s.newNodeState(n)
	old := s.nodes[n.ID]
	s.nodes[n.ID] = ns
	if old == nil {
		if n.Healthy {
			s.index(ns)
		}
		return nil, nil
	}
	s.unindex(old)
	runs := sortedRuns(old.bound)
	byKey := make(map[string]int, len(ns.devs))
	for i, d := range ns.devs {
		byKey[deviceKey(d.Device)] = i
	}
	for _, r := range runs {
		b := r.binding
		s.unbind(r)
		if n.Healthy && s.reattach(r, b, old, ns, byKey) {
			continue
		}
		s.requeue(r, fmt.Sprintf("requeued: node %s changed", n.ID))
		requeued = append(requeued, r.run.ID)
	}
	if n.Healthy {
		s.index(ns)
	}
	return requeued, nil
}

// reattach binds r again on the new state of its node when every device it
// held is still there, healthy and free.
func (s *Scheduler) reattach(r *runState, b *boundState, old, ns *nodeState, byKey map[string]int) bool {
	devs := make([]int, len(b.devs))
	for j, i := range b.devs {
		ni, ok := byKey[deviceKey(old.devs[i].Device)]
		if !ok || !ns.devs[ni].Healthy || ns.devs[ni].runID != "" {
			return false
		}
		devs[j] = ni
	}
	for _, ni := range devs {
		np := ns.devs[ni].np
		np.free = slices.DeleteFunc(np.free, func(x int) bool { return x == ni })
	}
	s.attach(r, ns, b.option, devs)
	return true
}

// RemoveNode forgets a node; the runs bound to it go back to the queue and
// their IDs are returned.
func (s *Scheduler) RemoveNode(id string) (requeued []string) {
	s.walked = 0
	n := s.nodes[id]
	if n == nil {
		return nil
	}
	requeued = s.evict(n, fmt.Sprintf("requeued: node %s was removed", id))
	s.unindex(n)
	delete(s.nodes, id)
	return requeued
}

// SetNodeHealth marks a node healthy or not. Turning unhealthy sends its
// runs back to the queue (their IDs are returned) and stops placements there.
func (s *Scheduler) SetNodeHealth(id string, healthy bool) (requeued []string) {
	s.walked = 0
	n := s.nodes[id]
	if n == nil || n.node.Healthy == healthy {
		return nil
	}
	n.node.Healthy = healthy
	if healthy {
		s.index(n)
		return nil
	}
	requeued = s.evict(n, fmt.Sprintf("requeued: node %s became unhealthy", id))
	s.unindex(n)
	return requeued
}

func (s *Scheduler) evict(n *nodeState, reason string) []string {
	var ids []string
	for _, r := range sortedRuns(n.bound) {
		s.unbind(r)
		s.requeue(r, reason)
		ids = append(ids, r.run.ID)
	}
	return ids
}

func sortedRuns(m map[string]*runState) []*runState {
	runs := slices.Collect(maps.Values(m))
	slices.SortFunc(runs, func(a, b *runState) int { return runCompare(a, b) })
	return runs
}

// runCompare orders the queue: higher priority first, then lower Seq, then ID.
func runCompare(a, b *runState) int {
	if c := cmp.Compare(b.run.Priority, a.run.Priority); c != 0 {
		return c
	}
	if c := cmp.Compare(a.run.Seq, b.run.Seq); c != 0 {
		return c
	}
	return strings.Compare(a.run.ID, b.run.ID)
}

// Enqueue adds a run to the queue. Its internedRequest must come from
// tasks.Resources.Parse (or obey the same rules).
func (s *Scheduler) Enqueue(run Run) error {
	if run.ID == "" {
		return fmt.Errorf("%w: empty ID", ErrInvalidRun)
	}
	if _, ok := s.runs[run.ID]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateRun, run.ID)
	}
	req := run.Request
	if req.MilliCPU < 0 || req.MemoryBytes < 0 || req.DiskBytes < 0 {
		return fmt.Errorf("%w: run %q: negative CPU, memory or disk", ErrInvalidRun, run.ID)
	}
	if len(req.GPUs) > tasks.MaxGPUAlternatives {
		return fmt.Errorf("%w: run %q: %d GPU alternatives, at most %d", ErrInvalidRun, run.ID, len(req.GPUs), tasks.MaxGPUAlternatives)
	}
	rq, err := s.intern(run.ID, req)
	if err != nil {
		return err
	}
	r := &runState{
		run: runInfo{ID: run.ID, Project: run.Project, Priority: run.Priority, Seq: run.Seq, req: rq},
	}
	if r.run.Seq == 0 {
		s.lastSeq++
		r.run.Seq = s.lastSeq
	} else {
		s.lastSeq = max(s.lastSeq, r.run.Seq)
	}
	s.runs[run.ID] = r
	s.insertQueue(r)
	return nil
}

func (s *Scheduler) insertQueue(r *runState) {
	s.countWaiting(r, 1)
	i := sort.Search(len(s.queue), func(i int) bool { return runCompare(r, s.queue[i]) < 0 })
	s.queue = slices.Insert(s.queue, i, r)
	if i < s.walked {
		s.walked = 0 // ahead of runs the last round decided
	}
}

// queueIndex finds a waiting run by binary search: O(log n).
func (s *Scheduler) queueIndex(r *runState) (int, bool) {
	i := sort.Search(len(s.queue), func(i int) bool { return runCompare(s.queue[i], r) >= 0 })
	return i, i < len(s.queue) && s.queue[i] == r
}

// Cancel forgets a run: a waiting run leaves the queue, a bound run frees
// its node. It reports whether the run was known.
func (s *Scheduler) Cancel(runID string) bool {
	r := s.runs[runID]
	if r == nil {
		return false
	}
	if r.binding != nil {
		s.unbind(r)
	} else if i, ok := s.queueIndex(r); ok {
		s.queue = slices.Delete(s.queue, i, i+1)
		s.countWaiting(r, -1)
		delete(s.explicit, r)
		if i < s.walked {
			s.walked = 0 // its reservation, if any, is free
		}
		if n := r.reservedNode; n != nil {
			n.reservedBy = nil
			r.reservedNode = nil
		}
	}
	s.release(r)
	delete(s.runs, runID)
	return true
}

// Release frees what a finished run held. It reports whether the run was
// bound; a waiting run is left alone (use Cancel).
func (s *Scheduler) Release(runID string) bool {
	r := s.runs[runID]
	if r == nil || r.binding == nil {
		return false
	}
	s.unbind(r)
	s.release(r)
	delete(s.runs, runID)
	return true
}

// attach binds r to the devices devs of n (already taken off the free lists).
func (s *Scheduler) attach(r *runState, n *nodeState, opt int, devs []int) {
	for _, i := range devs {
		n.devs[i].runID = r.run.ID
	}
	n.freeCPU -= r.run.req.req.MilliCPU
	n.freeMem -= r.run.req.req.MemoryBytes
	n.bound[r.run.ID] = r
	r.binding = &boundState{node: n, option: opt, devs: devs, gpus: len(devs)}
	r.reason = ""
	r.reservedNode = nil
	r.prevReserved = nil
	s.projectGPUs[r.run.Project] += len(devs)
	s.countProject(r.run.Project, 0, 1)
}

// unbind returns what r holds to its node and leaves r detached.
func (s *Scheduler) unbind(r *runState) {
	b := r.binding
	if b == nil {
		return
	}
	s.walked = 0 // capacity freed
	n := b.node
	for _, i := range b.devs {
		d := &n.devs[i]
		d.runID = ""
		if d.Healthy {
			np := d.np
			j, _ := slices.BinarySearch(np.free, i)
			np.free = slices.Insert(np.free, j, i)
			np.reindex()
		}
	}
	n.freeCPU += r.run.req.req.MilliCPU
	n.freeMem += r.run.req.req.MemoryBytes
	n.reindex()
	delete(n.bound, r.run.ID)
	if s.projectGPUs[r.run.Project] -= b.gpus; s.projectGPUs[r.run.Project] == 0 {
		delete(s.projectGPUs, r.run.Project)
	}
	s.countProject(r.run.Project, 0, -1)
	r.binding = nil
}

// projectCount is one project's share of the runs the scheduler knows.
type projectCount struct{ waiting, bound int }

// countProject adds to a project's counts, forgetting a project with none.
func (s *Scheduler) countProject(project string, waiting, bound int) {
	c := s.projectRuns[project]
	if c == nil {
		c = &projectCount{}
		s.projectRuns[project] = c
	}
	c.waiting += waiting
	c.bound += bound
	if c.waiting == 0 && c.bound == 0 {
		delete(s.projectRuns, project)
	}
}

func (s *Scheduler) requeue(r *runState, reason string) {
	r.reason = reason
	s.explicit[r] = struct{}{}
	s.insertQueue(r)
}
