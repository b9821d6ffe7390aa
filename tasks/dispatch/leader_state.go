package dispatch

import (
	"context"
	"fmt"
	"reflect"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/scheduler"
	"github.com/taskgate/taskgate/tasks/store"
)

// nodeEntry is a live node as the leader sees it: its stored inventory
// and what runs bound before this leader took over hold of it.
type nodeEntry struct {
	inv   scheduler.Node
	holds map[string]hold
}

type hold struct {
	refs     map[string]bool
	cpu, mem int64
}

// rebuild loads the cluster from the store into a fresh scheduler: live
// nodes, queued runs, and bound runs as holds on their nodes.
func (l *leader) rebuild(ctx context.Context) error {
	sched, err := scheduler.New(l.schedConfig)
	if err != nil {
		return err
	}
	// Drop what arrived so far: the reads below include it. What arrives
	// from now on is handled after, and handling twice is harmless.
	l.inMu.Lock()
	l.inbox, l.local, l.freed = nil, nil, nil
	l.inMu.Unlock()
	nodes, err := l.st.Nodes(ctx)
	if err != nil {
		return err
	}
	// The placement columns only: a restart on a large backlog reads no
	// inputs (issue 19).
	runs, err := l.st.ActivePlacements(ctx)
	if err != nil {
		return err
	}

	l.mu.Lock()
	l.sched = sched
	l.entries = map[string]*entry{}
	l.fresh = nil
	l.nodes = map[string]*nodeEntry{}
	l.delayed = nil
	now := l.now()
	for _, n := range nodes {
		if now.Sub(n.Heartbeat) > l.heartbeatTimeout {
			continue // syncNodes below requeues its runs
		}
		inv, err := decodeInventory(n.Inventory)
		if err != nil {
			l.log.Warn("node inventory unreadable; ignoring node", "node", n.ID, "err", err)
			continue
		}
		l.nodes[n.ID] = &nodeEntry{inv: inv, holds: map[string]hold{}}
	}
	var failed []store.Transition
	for i := range runs {
		r := &runs[i]
		l.remoteSeq = max(l.remoteSeq, r.Seq)
		switch r.Phase {
		case tasks.PhaseQueued, tasks.PhaseWaitingForResources:
			if t, bad := l.addPending(*r); bad {
				failed = append(failed, t)
			}
		default:
			e := &entry{name: r.Name, state: stHeld, node: r.Node, attempt: r.Attempt}
			l.entries[r.Name] = e
			if ne := l.nodes[r.Node]; ne != nil {
				h := hold{refs: map[string]bool{}}
				for _, ref := range r.Devices {
					h.refs[ref] = true
				}
				if def, ok := l.registry.Lookup(r.Project, r.Domain, r.Task); ok {
					h.cpu, h.mem = def.Request.MilliCPU, def.Request.MemoryBytes
				}
				ne.holds[r.Name] = h
			}
		}
	}
	for id, ne := range l.nodes {
		if _, err := sched.UpsertNode(effective(ne)); err != nil {
			l.log.Warn("node refused by the scheduler", "node", id, "err", err)
			delete(l.nodes, id)
		}
	}
	l.rescanFrom, l.prevSeq = l.remoteSeq, l.remoteSeq
	l.active = true
	l.mu.Unlock()
	if err := l.failRuns(ctx, failed); err != nil {
		return err
	}
	l.fails.nodes.Report(ctx, l.syncNodes(ctx))
	l.signal()
	return nil
}

// syncNodes reads the registered nodes: new or changed inventories go to
// the scheduler, and nodes silent past HeartbeatTimeout lose their runs.
func (l *leader) syncNodes(ctx context.Context) error {
	nodes, err := l.st.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("read nodes: %w", err)
	}
	now := l.now()
	alive := map[string]bool{}
	var dead []string
	l.mu.Lock()
	for _, n := range nodes {
		if now.Sub(n.Heartbeat) > l.heartbeatTimeout {
			dead = append(dead, n.ID)
			continue
		}
		inv, err := decodeInventory(n.Inventory)
		if err != nil {
			continue
		}
		alive[n.ID] = true
		ne := l.nodes[n.ID]
		if ne != nil && reflect.DeepEqual(ne.inv, inv) {
			continue
		}
		if ne == nil {
			ne = &nodeEntry{holds: map[string]hold{}}
			l.nodes[n.ID] = ne
		}
		ne.inv = inv
		if _, err := l.sched.UpsertNode(effective(ne)); err != nil {
			l.log.Warn("node refused by the scheduler", "node", n.ID, "err", err)
		}
	}
	for id := range l.nodes {
		if !alive[id] {
			dead = append(dead, id)
		}
	}
	for _, e := range l.entries {
		if (e.state == stBound || e.state == stHeld) && !alive[e.node] {
			dead = append(dead, e.node)
		}
	}
	l.mu.Unlock()
	seen := map[string]bool{}
	var first error
	for _, id := range dead {
		if !seen[id] {
			seen[id] = true
			if err := l.nodeDead(ctx, id); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// nodeDead requeues the runs of a node that stopped heartbeating, as
// interruptions (or fails those past MaxInterruptions), and forgets the
// node.
func (l *leader) nodeDead(ctx context.Context, id string) error {
	runs, err := l.st.ActiveRuns(ctx, id)
	if err != nil {
		return fmt.Errorf("read runs of dead node %s: %w", id, err)
	}
	var ts []store.Transition
	for _, r := range runs {
		if r.Phase == tasks.PhaseInitializing || r.Phase == tasks.PhaseRunning {
			def, _ := l.registry.Lookup(r.Project, r.Domain, r.Task)
			ts = append(ts, interruptTransition(r, l.caps.limits(def), l.now(), fmt.Sprintf("node %s stopped heartbeating", id)))
		}
	}
	if len(ts) > 0 {
		if _, err := l.trans.commit(ctx, ts); err != nil {
			return fmt.Errorf("requeue runs of dead node %s: %w", id, err)
		}
		// After the commit: a failed one is retried, and logged, apart.
		l.log.Warn("node lost; its runs requeued", "lost_node", id, "runs", len(ts))
	}
	l.mu.Lock()
	for _, rid := range l.sched.RemoveNode(id) {
		// Back in the scheduler's queue, but their requeue notification
		// re-adds them from the store with their new attempt.
		l.sched.Cancel(rid)
		delete(l.entries, rid)
	}
	delete(l.nodes, id)
	l.mu.Unlock()
	if err := l.st.DeleteNode(ctx, id); err != nil {
		return fmt.Errorf("forget dead node %s: %w", id, err)
	}
	return nil
}

// rescan re-reads queued runs committed since two rescans ago.
func (l *leader) rescan(ctx context.Context) error {
	rs, err := l.st.QueuedRunsAfter(ctx, l.rescanFrom, 10000)
	if err != nil {
		return err
	}
	var failed []store.Transition
	l.mu.Lock()
	for _, r := range rs {
		l.remoteSeq = max(l.remoteSeq, r.Seq)
		if t, bad := l.addPending(placementOf(r)); bad {
			failed = append(failed, t)
		}
	}
	l.rescanFrom, l.prevSeq = l.prevSeq, l.remoteSeq
	l.mu.Unlock()
	if len(rs) > 0 {
		l.signal()
	}
	return l.failRuns(ctx, failed)
}

func (l *leader) purge(ctx context.Context) error {
	var first error
	if l.retention >= 0 {
		n, err := l.st.PurgeRuns(ctx, l.now().Add(-l.retention))
		if err != nil {
			first = fmt.Errorf("purge inputs and outputs: %w", err)
		} else if n > 0 {
			l.log.Info("purged inputs and outputs of old runs", "runs", n)
		}
	}
	if l.deleteAfter > 0 {
		// In batches, so that no transaction holds the writer long; a
		// backlog larger than the cap waits for the next purge.
		const batch, maxBatches = 1000, 100
		cut, total := l.now().Add(-l.deleteAfter), 0
		for range maxBatches {
			n, err := l.st.DeleteRuns(ctx, cut, batch)
			total += n
			if err != nil {
				if first == nil {
					first = fmt.Errorf("delete old runs: %w", err)
				}
				break
			}
			if n < batch {
				break
			}
		}
		if total > 0 {
			l.log.Info("deleted old runs", "runs", total)
		}
	}
	return first
}

// effective is a node's inventory less what held runs use.
func effective(ne *nodeEntry) scheduler.Node {
	n := ne.inv
	if len(ne.holds) == 0 {
		return n
	}
	n.Devices = nil
	for _, dev := range ne.inv.Devices {
		used := false
		for _, h := range ne.holds {
			used = used || h.refs[deviceRef(dev)]
		}
		if !used {
			n.Devices = append(n.Devices, dev)
		}
	}
	for _, h := range ne.holds {
		n.MilliCPU = max(0, n.MilliCPU-h.cpu)
		n.MemoryBytes = max(0, n.MemoryBytes-h.mem)
	}
	return n
}
