package scheduler

import (
	"cmp"
	"maps"
	"slices"
)

// Position reports where a waiting run stands: its 1-based place in the
// queue and the reason the last round gave. The queue is kept sorted, so
// this is a binary search, not a scan. ok is false for a run that is bound
// or unknown.
func (s *Scheduler) Position(runID string) (pos int, reason string, ok bool) {
	r := s.runs[runID]
	if r == nil || r.binding != nil {
		return 0, "", false
	}
	i, found := s.queueIndex(r)
	if !found {
		return 0, "", false
	}
	return i + 1, s.reasonOf(r), true
}

// BindingOf returns the binding of a bound run.
func (s *Scheduler) BindingOf(runID string) (Binding, bool) {
	r := s.runs[runID]
	if r == nil || r.binding == nil {
		return Binding{}, false
	}
	b := r.binding
	out := Binding{RunID: runID, NodeID: b.node.node.ID, Option: b.option}
	for _, i := range b.devs {
		out.Devices = append(out.Devices, b.node.devs[i].Device)
	}
	return out, true
}

// Waiting lists the waiting runs in queue order.
func (s *Scheduler) Waiting() []WaitInfo {
	out := make([]WaitInfo, len(s.queue))
	for i, r := range s.queue {
		out[i] = WaitInfo{
			RunID:    r.run.ID,
			Project:  r.run.Project,
			Priority: r.run.Priority,
			Position: i + 1,
			Reason:   s.reasonOf(r),
		}
		if r.reservedNode != nil {
			out[i].ReservedNode = r.reservedNode.node.ID
		}
	}
	return out
}

// Snapshot lists every node with its free resources and who holds what,
// sorted by node ID.
func (s *Scheduler) Snapshot() []NodeInfo {
	ids := slices.Sorted(maps.Keys(s.nodes))
	out := make([]NodeInfo, 0, len(ids))
	for _, id := range ids {
		n := s.nodes[id]
		info := NodeInfo{
			ID:              id,
			Labels:          maps.Clone(n.node.Labels),
			Healthy:         n.node.Healthy,
			MilliCPU:        n.node.MilliCPU,
			FreeMilliCPU:    n.freeCPU,
			MemoryBytes:     n.node.MemoryBytes,
			FreeMemoryBytes: n.freeMem,
			Runs:            slices.Sorted(maps.Keys(n.bound)),
		}
		if n.reservedBy != nil {
			info.ReservedFor = n.reservedBy.run.ID
		}
		for _, d := range n.devs {
			info.Devices = append(info.Devices, DeviceInfo{Device: d.Device, RunID: d.runID})
			if d.Healthy && d.runID == "" {
				if info.Free == nil {
					info.Free = make(map[string]int)
				}
				info.Free[poolKey{typ: d.Type, mig: d.MIG}.String()]++
			}
		}
		out = append(out, info)
	}
	return out
}

// QueueSummary counts waiting and bound runs by project and by reason.
func (s *Scheduler) QueueSummary() QueueSummary {
	sum := QueueSummary{Waiting: len(s.queue), Bound: len(s.runs) - len(s.queue)}
	for _, n := range s.reserved {
		if n.reservedBy != nil {
			sum.Reserved++
		}
	}
	for name, c := range s.projectRuns {
		sum.Projects = append(sum.Projects, ProjectSummary{Project: name, Waiting: c.waiting, Bound: c.bound,
			GPUsInUse: s.projectGPUs[name], GPUQuota: s.cfg.ProjectGPUQuota[name]})
	}
	slices.SortFunc(sum.Projects, func(a, b ProjectSummary) int { return cmp.Compare(a.Project, b.Project) })
	// Only the reasons need a walk, of the waiting runs alone, under the
	// leader's lock (a metrics scrape asks every few seconds). Runs come
	// in stretches of one reason, so a reason's count is looked up only
	// when it changes from the run before, and a reason the last round
	// did not give (a run past where it stopped) is worked out once per
	// request and project rather than once per run.
	reasons := make(map[string]*int)
	lastReason, lastCount := "", (*int)(nil)
	s.summaries++
	for _, r := range s.queue {
		reason := s.reasonOfMemo(r, s.summaries)
		if lastCount == nil || reason != lastReason {
			lastCount = reasons[reason]
			if lastCount == nil {
				lastCount = new(int)
				reasons[reason] = lastCount
			}
			lastReason = reason
		}
		*lastCount++
	}
	for reason, n := range reasons {
		sum.Reasons = append(sum.Reasons, ReasonCount{Reason: reason, Runs: *n})
	}
	slices.SortFunc(sum.Reasons, func(a, b ReasonCount) int {
		if c := cmp.Compare(b.Runs, a.Runs); c != 0 {
			return c
		}
		return cmp.Compare(a.Reason, b.Reason)
	})
	return sum
}

// Known reports whether the scheduler holds the run, waiting or bound.
func (s *Scheduler) Known(runID string) bool {
	_, ok := s.runs[runID]
	return ok
}

// WaitingCount is how many runs wait in the queue.
func (s *Scheduler) WaitingCount() int { return len(s.queue) }
