package dispatch

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/scheduler"
	"github.com/taskgate/taskgate/tasks/store"
)

// entryState is where a run the leader knows stands in its placement.
// A run in the scheduler's queue has no entry: the scheduler holds it.
type entryState int

const (
	// stDelayed: waiting for its NotBefore (retry backoff).
	stDelayed entryState = iota
	// stBound: bound by this leader.
	stBound
	// stHeld: bound before this leader took over; its resources are
	// subtracted from its node's inventory until it ends.
	stHeld
)

// entry is a run the leader knows outside the scheduler's queue: delayed,
// bound, or held.
type entry struct {
	name      string
	state     entryState
	node      string
	attempt   int           // of a bound or held run
	run       scheduler.Run // of a delayed run
	notBefore time.Time
	removed   bool // lazily dropped from delayed
}

// round rebuilds the state when it is stale, then handles what arrived and
// places runs. A store error leaves the state stale, to be rebuilt from the
// store by the next round.
func (l *leader) round(ctx context.Context, stale *bool) error {
	if *stale {
		if err := l.rebuild(ctx); err != nil {
			return fmt.Errorf("load scheduler state: %w", err)
		}
		*stale = false
	}
	rebuild, err := l.step(ctx)
	*stale = rebuild || err != nil
	return err
}

// step handles what arrived, then runs a scheduling round. It reports
// whether the state must be rebuilt from the store: after lost
// notifications, or a store error (then err).
func (l *leader) step(ctx context.Context) (rebuild bool, err error) {
	l.inMu.Lock()
	inbox, local, freed := l.inbox, l.local, l.freed
	l.inbox, l.local, l.freed = nil, nil, nil
	l.inMu.Unlock()

	var requeued []string
	pollRemote := false
	var failed []store.Transition
	l.mu.Lock()
	for _, r := range local {
		if t, bad := l.addPending(placementOf(r)); bad {
			failed = append(failed, t)
		}
	}
	for _, f := range freed {
		if e := l.entries[f.name]; e != nil && (e.state == stBound || e.state == stHeld) &&
			e.node == l.localNode && e.attempt == f.attempt {
			l.forget(f.name)
		}
	}
	for _, n := range inbox {
		l.log.Debug("leader notification", "kind", n.Kind, "run", n.Run, "phase", n.Phase)
		switch n.Kind {
		case store.NotifyOverflow:
			l.mu.Unlock()
			return true, nil
		case store.NotifySubmitted:
			pollRemote = true
		case store.NotifyEvent:
			l.forget(n.Run)
			if n.Phase == tasks.PhaseQueued {
				requeued = append(requeued, n.Run)
			}
		}
	}
	now := l.now()
	for {
		e, ok := l.delayed.popDue(now)
		if !ok {
			break
		}
		l.log.Debug("due", "run", e.name, "removed", e.removed)
		if e.removed {
			continue
		}
		delete(l.entries, e.name)
		if err := l.sched.Enqueue(e.run); err != nil {
			l.log.Error("requeue delayed run", "run", e.name, "err", err)
		}
	}
	l.mu.Unlock()

	// A read that fails leaves runs unknown: the rebuild reads them all.
	var add []*store.StoredRun
	for _, name := range requeued {
		r, err := l.st.GetRun(ctx, name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return true, fmt.Errorf("read requeued run %s: %w", name, err)
		}
		if err == nil && r.Phase == tasks.PhaseQueued {
			add = append(add, r)
		}
	}
	if pollRemote {
		rs, err := l.st.QueuedRunsAfter(ctx, l.remoteSeq, 10000)
		if err != nil {
			return true, fmt.Errorf("read submitted runs: %w", err)
		}
		add = append(add, rs...)
	}
	if len(add) > 0 {
		l.mu.Lock()
		for _, r := range add {
			l.remoteSeq = max(l.remoteSeq, r.Seq)
			if t, bad := l.addPending(placementOf(r)); bad {
				failed = append(failed, t)
			}
		}
		l.mu.Unlock()
	}
	if err := l.failRuns(ctx, failed); err != nil {
		return true, err
	}
	if err := l.schedule(ctx); err != nil {
		return true, err
	}
	return false, nil
}

// addPending puts a queued run into the scheduler (or the delay heap). A
// run the scheduler cannot take (its task is unknown here, its request is
// invalid) comes back as a transition that fails it. l.mu is held.
func (l *leader) addPending(p store.Placement) (store.Transition, bool) {
	if _, known := l.entries[p.Name]; known || l.sched.Known(p.Name) {
		return store.Transition{}, false
	}
	def, ok := l.registry.Lookup(p.Project, p.Domain, p.Task)
	if !ok {
		return failTransition(p, l.now(), fmt.Sprintf("task %s/%s/%s is not registered with the scheduler", p.Project, p.Domain, p.Task)), true
	}
	// The project's string is the registry's, not the row's: one copy
	// for every run of the task.
	run := scheduler.Run{ID: p.Name, Request: def.Request, Priority: p.Priority, Project: def.Project, Seq: uint64(p.Seq)}
	l.log.Debug("pending", "run", p.Name, "phase", p.Phase, "not_before", p.NotBefore)
	if p.NotBefore.After(l.now()) {
		e := &entry{name: p.Name, state: stDelayed, run: run, notBefore: p.NotBefore}
		l.entries[p.Name] = e
		heap.Push(&l.delayed, e)
		return store.Transition{}, false
	}
	if err := l.sched.Enqueue(run); err != nil {
		return failTransition(p, l.now(), "cannot be scheduled: "+err.Error()), true
	}
	if p.Phase == tasks.PhaseQueued {
		l.fresh = append(l.fresh, p.Name)
	}
	return store.Transition{}, false
}

// placementOf is what addPending reads of a run read whole.
func placementOf(r *store.StoredRun) store.Placement {
	return store.Placement{Name: r.Name, Seq: r.Seq, Project: r.Project, Domain: r.Domain, Task: r.Task, Phase: r.Phase,
		Priority: r.Priority, Attempt: r.Attempt, Node: r.Node, Devices: r.Devices, NotBefore: r.NotBefore}
}

// failTransition fails a queued run the scheduler cannot take: a
// permanent error, as decide says.
func failTransition(p store.Placement, now time.Time, msg string) store.Transition {
	r := &store.StoredRun{Run: tasks.Run{Name: p.Name, Phase: p.Phase, Attempt: p.Attempt}}
	t := decide(r, ending{err: tasks.Permanent(errors.New(msg))}, limits{}, now, 0)
	t.Run, t.At = r.Name, now
	t.From = []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources}
	return t
}

func (l *leader) failRuns(ctx context.Context, ts []store.Transition) error {
	if len(ts) == 0 {
		return nil
	}
	if _, err := l.trans.commit(ctx, ts); err != nil {
		return fmt.Errorf("fail %d unschedulable runs: %w", len(ts), err)
	}
	return nil
}

// forget drops what the scheduler knows of a run that ended or went back to
// the queue. l.mu is held.
func (l *leader) forget(name string) {
	e := l.entries[name]
	if e == nil {
		if !l.sched.Cancel(name) { // a waiting run leaves the queue
			l.log.Debug("forget unknown", "run", name)
		}
		return
	}
	l.log.Debug("forget", "run", name, "state", e.state)
	switch e.state {
	case stDelayed:
		e.removed = true
	case stBound:
		l.sched.Release(name)
	case stHeld:
		if ne := l.nodes[e.node]; ne != nil {
			delete(ne.holds, name)
			if _, err := l.sched.UpsertNode(effective(ne)); err != nil {
				l.log.Warn("update node", "node", e.node, "err", err)
			}
		}
	}
	delete(l.entries, name)
}

// schedule runs one placement round and records its decisions. After an
// error the scheduler's state no longer matches the store's.
func (l *leader) schedule(ctx context.Context) error {
	start := time.Now()
	l.mu.Lock()
	bs := l.sched.Schedule()
	now := l.now()
	ts := make([]store.Transition, len(bs))
	for i, b := range bs {
		refs := make([]string, len(b.Devices))
		for j, dev := range b.Devices {
			refs[j] = deviceRef(dev)
		}
		ts[i] = store.Transition{Run: b.RunID, From: []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources},
			To: tasks.PhaseInitializing, At: now, Bind: &store.Binding{Node: b.NodeID, Devices: refs}}
		l.entries[b.RunID] = &entry{name: b.RunID, state: stBound, node: b.NodeID}
	}
	// While rounds bind runs the queue is moving, and the runs they leave
	// waiting are mostly bound by the next few: recording each of them
	// waiting_for_resources would cost a write per waiting run (most of
	// a large backlog's drain, issue 19). They are recorded once the
	// queue has gone settleDelay without a binding; lead runs a round
	// then.
	if len(bs) > 0 {
		l.lastBind = time.Now()
	}
	if len(bs) >= maxBindingsPerRound {
		l.signal() // cut short: the next round binds the rest
	}
	var waits []store.Transition
	l.unsettled = len(l.fresh) > 0 && time.Since(l.lastBind) < settleDelay
	if !l.unsettled {
		for _, name := range l.fresh {
			if _, reason, ok := l.sched.Position(name); ok {
				waits = append(waits, store.Transition{Run: name, From: []tasks.Phase{tasks.PhaseQueued},
					To: tasks.PhaseWaitingForResources, At: now, WaitReason: reason})
			}
		}
		l.fresh = nil
	} else {
		l.compactFresh()
	}
	l.mu.Unlock()

	if len(ts) > 0 {
		// Runs bound to this process's own node start running in the same
		// change: an in-process function needs no initialization, and the
		// saved work is most of an idle node's submit-to-running time.
		// They are handed to the agent below, by the in-process route of
		// "Hand-offs" in doc.go.
		if l.runStarted != nil {
			for i, b := range bs {
				if b.NodeID == l.localNode {
					ts[i].To, ts[i].Start = tasks.PhaseRunning, true
				}
			}
		}
		res, err := l.trans.commit(ctx, ts)
		if err != nil {
			return fmt.Errorf("record bindings of %d runs: %w", len(ts), err)
		}
		var started []int
		l.mu.Lock()
		for i, r := range res {
			if !r.Applied {
				// Aborted (or bound by another leader) meanwhile.
				l.sched.Release(bs[i].RunID)
				delete(l.entries, bs[i].RunID)
				continue
			}
			if e := l.entries[bs[i].RunID]; e != nil {
				e.attempt = r.Run.Attempt
			}
			if ts[i].Start {
				started = append(started, i)
			}
		}
		l.mu.Unlock()
		for _, i := range started {
			l.runStarted(res[i].Run, bs[i].Devices)
		}
	}
	l.obs.Placed(time.Since(start), len(ts))
	roundSpan(l.tracer, start, len(ts))
	if len(waits) > 0 {
		if _, err := l.trans.commit(ctx, waits); err != nil {
			return fmt.Errorf("record %d waiting runs: %w", len(waits), err)
		}
	}
	return nil
}

// compactFresh drops from fresh the names of runs no longer waiting, once
// they outnumber the waiting runs, so that a backlog that drains without
// settling does not keep every name it ever held: amortized, O(1) a run.
// l.mu is held.
func (l *leader) compactFresh() {
	if len(l.fresh) < 1024 || len(l.fresh) < 2*l.sched.WaitingCount() {
		return
	}
	kept := l.fresh[:0]
	for _, name := range l.fresh {
		if _, _, ok := l.sched.Position(name); ok {
			kept = append(kept, name)
		}
	}
	clear(l.fresh[len(kept):])
	l.fresh = kept
}

// delayHeap orders delayed runs by NotBefore.
type delayHeap []*entry

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].notBefore.Before(h[j].notBefore) }
func (h delayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)        { *h = append(*h, x.(*entry)) }
func (h *delayHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func (h *delayHeap) next() (time.Time, bool) {
	for h.Len() > 0 && (*h)[0].removed {
		heap.Pop(h)
	}
	if h.Len() == 0 {
		return time.Time{}, false
	}
	return (*h)[0].notBefore, true
}

func (h *delayHeap) popDue(now time.Time) (*entry, bool) {
	if h.Len() == 0 || (*h)[0].notBefore.After(now) {
		return nil, false
	}
	return heap.Pop(h).(*entry), true
}
