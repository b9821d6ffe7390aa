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
type entryState int

const (
	// stWaiting: in the scheduler's queue.
	stWaiting entryState = iota
	// stDelayed: waiting for its NotBefore (retry backoff).
	stDelayed
	// stBound: bound by this leader.
	stBound
	// stHeld: bound before this leader took over; its resources are
	// subtracted from its node's inventory until it ends.
	stHeld
)

// entry is a run the leader knows: pending, delayed, or bound.
type entry struct {
	name      string
	state     entryState
	node      string
	attempt   int // of a bound or held run
	run       scheduler.Run
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
		if t, bad := l.addPending(r); bad {
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
		e.state = stWaiting
		if err := l.sched.Enqueue(e.run); err != nil {
			l.log.Error("requeue delayed run", "run", e.name, "err", err)
			delete(l.entries, e.name)
			continue
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
			if t, bad := l.addPending(r); bad {
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
func (l *leader) addPending(r *store.StoredRun) (store.Transition, bool) {
	if _, known := l.entries[r.Name]; known {
		return store.Transition{}, false
	}
	def, ok := l.registry.Lookup(r.Project, r.Domain, r.Task)
	if !ok {
		return failTransition(r, l.now(), fmt.Sprintf("task %s/%s/%s is not registered with the scheduler", r.Project, r.Domain, r.Task)), true
	}
	e := &entry{name: r.Name, run: scheduler.Run{
		ID: r.Name, Request: def.Request, Priority: r.Priority, Project: r.Project,
		Submitted: r.CreatedAt, Seq: uint64(r.Seq),
	}}
	l.log.Debug("pending", "run", r.Name, "phase", r.Phase, "not_before", r.NotBefore)
	if r.NotBefore.After(l.now()) {
		e.state, e.notBefore = stDelayed, r.NotBefore
		l.entries[r.Name] = e
		heap.Push(&l.delayed, e)
		return store.Transition{}, false
	}
	if err := l.sched.Enqueue(e.run); err != nil {
		return failTransition(r, l.now(), "cannot be scheduled: "+err.Error()), true
	}
	l.entries[r.Name] = e
	if r.Phase == tasks.PhaseQueued {
		l.fresh[r.Name] = e
	}
	return store.Transition{}, false
}

// failTransition fails a queued run the scheduler cannot take: a
// permanent error, as decide says.
func failTransition(r *store.StoredRun, now time.Time, msg string) store.Transition {
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
		l.log.Debug("forget unknown", "run", name)
		return
	}
	l.log.Debug("forget", "run", name, "state", e.state)
	switch e.state {
	case stWaiting:
		l.sched.Cancel(name)
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
	delete(l.fresh, name)
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
		if e := l.entries[b.RunID]; e != nil {
			e.state, e.node = stBound, b.NodeID
		}
		delete(l.fresh, b.RunID)
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
	var waits []store.Transition
	l.unsettled = len(l.fresh) > 0 && time.Since(l.lastBind) < settleDelay
	for name, e := range l.fresh {
		if l.unsettled {
			break
		}
		_, reason, ok := l.sched.Position(name)
		if !ok {
			continue
		}
		waits = append(waits, store.Transition{Run: name, From: []tasks.Phase{tasks.PhaseQueued},
			To: tasks.PhaseWaitingForResources, At: now, WaitReason: reason})
		delete(l.fresh, e.name)
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
