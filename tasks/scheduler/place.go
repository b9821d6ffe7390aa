package scheduler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// reasonNextRound is the reason of a run no round has looked at yet.
const reasonNextRound = "waiting for the next scheduling round"

// failure is what a round learnt about a shape that did not fit.
type failure struct {
	// impossible: no healthy node could ever hold the shape as the cluster
	// stands; what names the missing thing ("H100", "8 H100").
	impossible bool
	what       string
	reason     string
}

// Schedule runs one placement round: it walks the queue in order (priority,
// then FIFO) and binds every run that fits, trying each run's alternatives in
// order. The first waiting runs (Config.Reservations of them) each hold back
// the node they will get, so later, smaller runs backfill elsewhere but
// cannot starve them. Every run left waiting gets a reason.
//
// When nothing changed since the previous round for the runs it left
// waiting (no capacity freed, no binding made, no node changed, no run
// queued ahead of them), a round resumes after them with the reservations
// they hold: it decides as a full round would, in time proportional to the
// runs queued since, not to the whole queue. And a round stops once the
// runs left can neither bind nor reserve (walk.go): it costs the runs it
// binds, not the length of the queue behind them.
func (s *Scheduler) Schedule() []Binding {
	start, reservations := s.walked, s.resLeft
	if start == 0 || start > len(s.queue) || s.fullRounds {
		start = 0
		for _, n := range s.reserved {
			if r := n.reservedBy; r != nil {
				r.prevReserved = n
				r.reservedNode = nil
			}
			n.reservedBy = nil
		}
		s.reserved = s.reserved[:0]
		s.round++ // forgets every shape's failure
		s.failedShapes, s.impossibleShapes = 0, 0
		reservations = s.cfg.reservations()
	}

	s.stopAt, s.stopCut, s.stopGPUs = nil, false, nil
	clear(s.explicit)
	var out []Binding
	q := s.queue
	kept, next := start, start
	for next < len(q) {
		r := q[next]
		if s.cfg.MaxBindingsPerRound > 0 && len(out) >= s.cfg.MaxBindingsPerRound {
			s.stopped(r, true)
			break
		}
		if s.hopeless(reservations) {
			s.stopped(r, false)
			break
		}
		next++
		var b Binding
		var ok bool
		if s.observe != nil {
			start := time.Now()
			b, ok = s.decide(r, &reservations)
			s.observe(time.Since(start))
		} else {
			b, ok = s.decide(r, &reservations)
		}
		if ok {
			out = append(out, b)
			s.countWaiting(r, -1)
			continue
		}
		q[kept] = r
		kept++
	}
	// The runs not looked at move up over the gaps of those bound: a
	// memmove, cheaper by far than deciding them.
	n := copy(q[kept:], q[next:])
	clear(q[kept+n:])
	s.queue = q[:kept+n]
	cut := s.stopCut
	// The next round may resume after these runs only if this one changed
	// nothing they were decided on: a binding takes capacity and project
	// quota (a run left waiting may now wait for the quota, and then not
	// reserve), and a round cut short left runs undecided.
	s.walked, s.resLeft = kept, reservations
	if cut || len(out) > 0 {
		s.walked = 0
	}
	return out
}

// decide binds r or records why it waits.
func (s *Scheduler) decide(r *runState, reservations *int) (Binding, bool) {
	reason, waitOpt := "", -1
	var missing []string
	for i := range r.run.req.opts {
		o := &r.run.req.opts[i]
		if s.overQuota(r, o, s.projectGPUs) {
			if reason == "" {
				reason = s.quotaText(s.cfg.ProjectGPUQuota[r.run.Project])
			}
			continue
		}
		var f *failure
		if o.memo.round == s.round {
			f = o.memo.fail
		}
		if f == nil {
			if n, np := s.find(r, o); n != nil {
				return s.bind(r, i, n, np), true
			}
			f = s.explain(o)
			s.learnt(o.memo, f)
		}
		if f.impossible {
			missing = append(missing, f.what)
			continue
		}
		if reason == "" {
			reason, waitOpt = f.reason, i
		}
	}
	if reason == "" {
		reason = noNodeHas(missing)
	}
	r.reason = reason
	if waitOpt >= 0 && *reservations > 0 {
		if n := s.reserve(r, &r.run.req.opts[waitOpt]); n != nil {
			*reservations--
		}
	}
	return Binding{}, false
}

// overQuota reports whether o would take r's project past its GPU quota,
// with gpus the devices each project holds.
func (s *Scheduler) overQuota(r *runState, o *option, gpus map[string]int) bool {
	if o.shape.count == 0 || len(s.cfg.ProjectGPUQuota) == 0 {
		return false
	}
	q := s.cfg.ProjectGPUQuota[r.run.Project]
	return q > 0 && gpus[r.run.Project]+o.shape.count > q
}

func noNodeHas(missing []string) string {
	return "no node has " + strings.Join(missing, " or ")
}

func (s *Scheduler) quotaText(q int) string {
	t, ok := s.quotaReason[q]
	if !ok {
		unit := "GPUs"
		if q == 1 {
			unit = "GPU"
		}
		t = fmt.Sprintf("project quota of %d %s reached", q, unit)
		s.quotaReason[q] = t
	}
	return t
}

// poolsFor returns the pools whose devices serve o, in creation order.
func (s *Scheduler) poolsFor(o *option) []*pool {
	if ps, ok := s.matches[o.shape.pk]; ok {
		return ps
	}
	var ps []*pool
	for _, p := range s.poolOrder {
		if o.req.Matches(p.key.typ, p.key.mig) {
			ps = append(ps, p)
		}
	}
	s.matches[o.shape.pk] = ps
	return ps
}

// usable reports whether r may be placed on n now, apart from devices.
func usable(n *nodeState, r *runState) bool {
	return (n.reservedBy == nil || n.reservedBy == r) &&
		n.freeCPU >= r.run.req.req.MilliCPU && n.freeMem >= r.run.req.req.MemoryBytes
}

// find returns the node (and for a GPU option the node's pool) that the
// strategy picks for o, or nil.
func (s *Scheduler) find(r *runState, o *option) (*nodeState, *nodePool) {
	if o.shape.count == 0 {
		if n := s.findCPU(&s.cpuOnly, r); n != nil {
			return n, nil
		}
		return s.findCPU(&s.gpuNodes, r), nil
	}
	var best *slot
	need := o.shape.count
	for _, p := range s.poolsFor(o) {
		levels := p.idx.levels
		if s.cfg.Strategy == Spread {
			for l := len(levels) - 1; l >= need && (best == nil || l > best.level); l-- {
				if sl := firstUsable(levels[l], r); sl != nil {
					best = sl
					break
				}
			}
			continue
		}
		for l := need; l < len(levels) && (best == nil || l < best.level); l++ {
			if sl := firstUsable(levels[l], r); sl != nil {
				best = sl
				break
			}
		}
	}
	if best == nil {
		return nil, nil
	}
	return best.node, best.np
}

func firstUsable(level []*slot, r *runState) *slot {
	for _, sl := range level {
		if usable(sl.node, r) {
			return sl
		}
	}
	return nil
}

func (s *Scheduler) findCPU(x *levelIndex, r *runState) *nodeState {
	need := cpuLevel(r.run.req.req.MilliCPU)
	if s.cfg.Strategy == Spread {
		for l := len(x.levels) - 1; l >= need; l-- {
			if sl := firstUsable(x.levels[l], r); sl != nil {
				return sl.node
			}
		}
		return nil
	}
	for l := need; l < len(x.levels); l++ {
		if sl := firstUsable(x.levels[l], r); sl != nil {
			return sl.node
		}
	}
	return nil
}

// bind takes the devices and resources of o on n for r.
func (s *Scheduler) bind(r *runState, opt int, n *nodeState, np *nodePool) Binding {
	var devs []int
	if np != nil {
		k := r.run.req.opts[opt].shape.count
		devs = make([]int, k)
		copy(devs, np.free[:k])
		np.free = append(np.free[:0], np.free[k:]...)
		np.reindex()
	}
	s.attach(r, n, opt, devs)
	n.reindex()
	b := Binding{RunID: r.run.ID, NodeID: n.node.ID, Option: opt}
	if len(devs) > 0 {
		b.Devices = make([]Device, len(devs))
		for i, d := range devs {
			b.Devices[i] = n.devs[d].Device
		}
	}
	return b
}

// explain says why o did not fit, after find failed.
func (s *Scheduler) explain(o *option) *failure {
	res := resourceText(o.shape.cpu, o.shape.mem)
	if o.shape.count == 0 {
		if !s.anyCPUNode(func(n *nodeState) bool { return fitsTotal(n, o) }) {
			if res == "" {
				return &failure{impossible: true, what: "room", reason: "no node is available"}
			}
			return &failure{impossible: true, what: res}
		}
		if res == "" {
			return &failure{reason: "waiting for a node"}
		}
		return &failure{reason: "waiting for " + res + " on one node"}
	}
	kind := kindText(o)
	pools := s.poolsFor(o)
	maxTotal := 0
	for _, p := range pools {
		maxTotal = max(maxTotal, p.maxTotal())
	}
	switch {
	case maxTotal == 0:
		return &failure{impossible: true, what: kind}
	case maxTotal < o.shape.count:
		return &failure{impossible: true, what: strconv.Itoa(o.shape.count) + " " + kind}
	}
	// The devices exist somewhere; is any node big enough in CPU and memory,
	// and is it those rather than the devices that are short right now?
	// Top down, so the common answers come from the first nodes looked at.
	capable, devicesFree := false, false
	for _, p := range pools {
		for l := len(p.idx.levels) - 1; l >= 0; l-- {
			if capable && (devicesFree || res == "" || l < o.shape.count) {
				break
			}
			for _, sl := range p.idx.levels[l] {
				if sl.np.total < o.shape.count || !fitsTotal(sl.node, o) {
					continue
				}
				capable = true
				if l >= o.shape.count && sl.node.reservedBy == nil {
					devicesFree = true
					break
				}
			}
		}
	}
	want := wantText(o, kind)
	switch {
	case !capable && o.shape.pk.mig != "":
		return &failure{impossible: true, what: kind + " with " + res}
	case !capable:
		return &failure{impossible: true, what: strconv.Itoa(o.shape.count) + " " + kind + " with " + res}
	case devicesFree && res != "":
		return &failure{reason: "waiting for " + res + " beside " + want + " on one node"}
	default:
		return &failure{reason: "waiting for " + want + " on one node"}
	}
}

// wantText is "4 free H100", "a free H100 MIG 1g.10gb", "2 free GPUs".
func wantText(o *option, kind string) string {
	if o.shape.pk.mig != "" {
		return "a free " + kind
	}
	return strconv.Itoa(o.shape.count) + " free " + kind
}

// kindText names the devices o asks for.
func kindText(o *option) string {
	if o.shape.pk.typ == "" {
		if o.shape.count == 1 {
			return "GPU"
		}
		return "GPUs"
	}
	return o.shape.pk.String()
}

func resourceText(milliCPU, mem int64) string {
	var parts []string
	if milliCPU > 0 {
		if milliCPU%1000 == 0 {
			parts = append(parts, strconv.FormatInt(milliCPU/1000, 10)+" CPU")
		} else {
			parts = append(parts, strconv.FormatInt(milliCPU, 10)+"m CPU")
		}
	}
	if mem > 0 {
		parts = append(parts, tasks.FormatQuantity(mem)+" memory")
	}
	return strings.Join(parts, " and ")
}

func fitsTotal(n *nodeState, o *option) bool {
	return n.node.MilliCPU >= o.shape.cpu && n.node.MemoryBytes >= o.shape.mem
}

func (s *Scheduler) anyCPUNode(f func(*nodeState) bool) bool {
	for _, x := range []*levelIndex{&s.cpuOnly, &s.gpuNodes} {
		for _, level := range x.levels {
			for _, sl := range level {
				if f(sl.node) {
					return true
				}
			}
		}
	}
	return false
}

// reserve holds back for r the node that can hold o and is closest to
// holding it: the most free matching devices (CPU-only: free cores), among
// nodes big enough and not held for another run. r's node from the last
// round is kept unless another has strictly more free, so a reservation
// fills up instead of hopping.
func (s *Scheduler) reserve(r *runState, o *option) *nodeState {
	valid := func(sl *slot) bool {
		total := 0
		if sl.np != nil {
			total = sl.np.total
		}
		return sl.pos >= 0 && sl.node.reservedBy == nil && total >= o.shape.count && fitsTotal(sl.node, o)
	}
	var best *slot
	// scan looks at x from the top level down and stops at the first valid
	// node, or at the level of the best found in an earlier index.
	scan := func(x *levelIndex) {
		for l := len(x.levels) - 1; l >= 0 && (best == nil || l > best.level); l-- {
			for _, sl := range x.levels[l] {
				if valid(sl) {
					best = sl
					break
				}
			}
		}
	}
	pools := s.poolsFor(o)
	if o.shape.count == 0 {
		scan(&s.cpuOnly)
		if best == nil {
			scan(&s.gpuNodes)
		}
	} else {
		for _, p := range pools {
			scan(&p.idx)
		}
	}
	if best == nil {
		return nil
	}
	// The node reserved last round, if it is still the node of that ID
	// (an inventory update replaces the state; the ID is what counts).
	var prev *nodeState
	if r.prevReserved != nil {
		prev = s.nodes[r.prevReserved.node.ID]
	}
	if prev != nil && prev != best.node {
		var sl *slot
		if o.shape.count == 0 {
			if prev.cpuIdx == best.node.cpuIdx {
				sl = &prev.cpu
			}
		} else {
			for _, np := range prev.pools {
				if slices.Contains(pools, np.pool) && (sl == nil || np.level > sl.level) {
					sl = &np.slot
				}
			}
		}
		if sl != nil && valid(sl) && sl.level >= best.level {
			best = sl
		}
	}
	n := best.node
	n.reservedBy = r
	r.reservedNode = n
	s.reserved = append(s.reserved, n)
	return n
}
