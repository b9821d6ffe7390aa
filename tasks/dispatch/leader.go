package dispatch

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskgate/taskgate/internal/backoff"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/scheduler"
	"github.com/taskgate/taskgate/tasks/store"
)

// leaseName is the scheduler's leader lease in the store.
const leaseName = "scheduler"

// rescanInterval is how often the leader re-reads queued runs that other
// processes submitted, in case a notification was lost or a commit landed
// out of sequence order.
const rescanInterval = 5 * time.Second

// leader is the scheduler candidate. While it holds the lease it owns a
// scheduler.Scheduler, fed from the store, and turns its bindings into
// initializing runs. Every decision is a conditional store transition, so
// a deposed leader that has not noticed yet cannot double-book a run.
type leader struct {
	d *Dispatcher
	// running is set when Start launched the loop, so stop waits for a
	// loop that exists (Start may fail before launching it).
	running atomic.Bool
	// leading is set while this candidate holds the lease and leads, from
	// just before the state is loaded: only then does the inbox below
	// fill, so a standby keeps nothing of what it sees.
	leading atomic.Bool

	// mu guards the state below; the loop releases it around store I/O so
	// that QueuePosition stays cheap.
	mu      sync.Mutex
	active  bool
	sched   *scheduler.Scheduler
	entries map[string]*entry
	// fresh holds runs in the scheduler's queue whose stored phase is
	// still queued: after a round that leaves them waiting they are marked
	// waiting_for_resources.
	fresh   map[string]*entry
	nodes   map[string]*nodeEntry
	delayed delayHeap

	// remoteSeq is the highest Seq read from the store; rescanFrom and
	// prevSeq step behind it for the rescans.
	remoteSeq, rescanFrom, prevSeq int64

	// fails pace and log the store errors of each of the leader's jobs.
	fails struct{ lease, round, nodes, rescan, purge *backoff.Failures }

	inMu   sync.Mutex
	inbox  []store.Notification
	local  []*store.StoredRun
	freed  []freedAttempt
	wake   chan struct{}
	stopCh chan struct{}
	once   sync.Once
	done   chan struct{}
}

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

type entry struct {
	name      string
	state     entryState
	node      string
	attempt   int // of a bound or held run
	run       scheduler.Run
	notBefore time.Time
	removed   bool // lazily dropped from delayed
}

type nodeEntry struct {
	inv   scheduler.Node
	holds map[string]hold
}

type hold struct {
	refs     map[string]bool
	cpu, mem int64
}

func newLeader(d *Dispatcher) (*leader, error) {
	if _, err := scheduler.New(schedulerConfig(d.cfg)); err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	l := &leader{d: d, wake: make(chan struct{}, 1), stopCh: make(chan struct{}), done: make(chan struct{})}
	l.fails.lease = d.failures("scheduler lease")
	l.fails.round = d.failures("scheduling round")
	l.fails.nodes = d.failures("scheduler: check nodes")
	l.fails.rescan = d.failures("scheduler: rescan queued runs")
	l.fails.purge = d.failures("purge old runs")
	return l, nil
}

func schedulerConfig(c Config) scheduler.Config {
	return scheduler.Config{Strategy: c.Strategy, ProjectGPUQuota: c.Quotas}
}

func (l *leader) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// notify takes a store notification (from the listener goroutine).
func (l *leader) notify(n store.Notification) {
	if !l.leading.Load() {
		return // rebuild reads the store when leading starts
	}
	switch n.Kind {
	case store.NotifyEvent:
		if !n.Phase.Terminal() && n.Phase != tasks.PhaseQueued {
			return
		}
	case store.NotifySubmitted:
		if n.Local {
			return // handed over directly by submitted
		}
	case store.NotifyAbort:
		return
	}
	l.inMu.Lock()
	l.inbox = append(l.inbox, n)
	l.inMu.Unlock()
	l.signal()
}

// submitted hands over runs this process just committed.
func (l *leader) submitted(runs []*store.StoredRun) {
	if !l.leading.Load() {
		return
	}
	l.inMu.Lock()
	l.local = append(l.local, runs...)
	l.inMu.Unlock()
	l.signal()
}

// freedAttempt is an attempt of a run whose function returned on this
// process's node.
type freedAttempt struct {
	name    string
	attempt int
}

// released tells the leader that the attempt of a run on this process's
// node is over: its function returned and its outcome is being written.
// The leader frees what the attempt held at its next step instead of when
// that commit comes back, so the next run starts while the outcome is
// written: the devices and cores are free once the function returned,
// whatever the store says yet. An attempt the leader no longer holds for
// this node (requeued, bound again) is ignored.
func (l *leader) released(name string, attempt int) {
	if !l.leading.Load() {
		return
	}
	l.inMu.Lock()
	l.freed = append(l.freed, freedAttempt{name: name, attempt: attempt})
	l.inMu.Unlock()
	l.signal()
}

func (l *leader) stop() {
	l.once.Do(func() { close(l.stopCh) })
	if l.running.Load() {
		<-l.done
	}
}

func (l *leader) stopped() bool {
	select {
	case <-l.stopCh:
		return true
	default:
		return false
	}
}

// position answers QueuePosition.
func (l *leader) position(name string) (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.active {
		return 0, ""
	}
	if e := l.entries[name]; e != nil && e.state == stDelayed {
		return 0, "retrying at " + e.notBefore.Format(time.RFC3339Nano)
	}
	pos, reason, ok := l.sched.Position(name)
	if !ok {
		return 0, ""
	}
	return pos, reason
}

// run campaigns for the lease and leads while it holds it.
func (l *leader) run(ctx context.Context) {
	defer close(l.done)
	d := l.d
	for ctx.Err() == nil && !l.stopped() {
		ok, err := d.st.AcquireLease(ctx, leaseName, d.holder, d.cfg.LeaseTTL)
		if ctx.Err() == nil {
			// Campaigns keep their pace whatever the error: a longer
			// wait would only delay the takeover.
			l.fails.lease.Report(ctx, err)
		}
		if ok {
			d.log.Info("scheduler lease acquired; leading")
			l.lead(ctx)
			continue
		}
		select {
		case <-ctx.Done():
		case <-l.stopCh:
		case <-time.After(d.cfg.LeaseTTL / 3):
		}
	}
}

func (l *leader) lead(ctx context.Context) {
	d := l.d
	defer func() {
		if p := recover(); p != nil {
			// A panic may have left l.mu held, and taking it here would
			// hang the scheduler for good while the API goes on taking
			// runs. Crash instead: the runs are in the store, and another
			// process (or this one, restarted) takes the lease over.
			panic(p)
		}
		l.leading.Store(false)
		l.inMu.Lock()
		l.inbox, l.local, l.freed = nil, nil, nil
		l.inMu.Unlock()
		l.mu.Lock()
		l.active = false
		l.sched, l.entries, l.fresh, l.nodes, l.delayed = nil, nil, nil, nil, nil
		l.mu.Unlock()
		if err := d.st.ReleaseLease(context.WithoutCancel(ctx), leaseName, d.holder); err != nil {
			l.fails.lease.Fail(ctx, err)
		}
	}()
	// Before rebuild reads the store: what commits after that read
	// reaches the inbox.
	l.leading.Store(true)
	renew := time.NewTicker(d.cfg.LeaseTTL / 3)
	defer renew.Stop()
	nodesT := time.NewTicker(d.cfg.HeartbeatInterval)
	defer nodesT.Stop()
	rescan := time.NewTicker(rescanInterval)
	defer rescan.Stop()
	// Purge and delete at a tenth of the shorter period (1s to 1h), so
	// that runs outlive it by at most a tenth.
	purgeEvery := time.Hour
	for _, p := range []time.Duration{d.cfg.Retention, d.cfg.DeleteAfter} {
		if p > 0 {
			purgeEvery = min(purgeEvery, max(p/10, time.Second))
		}
	}
	purgeT := time.NewTicker(purgeEvery)
	defer purgeT.Stop()
	delay := time.NewTimer(time.Hour)
	defer delay.Stop()
	// After a round that met a store error, the next one waits for retry
	// (a backoff, so that a full disk does not make the leader spin) and
	// starts from the store's state: stale is set until a rebuild
	// succeeds. The other jobs keep their tickers meanwhile.
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	retrying, stale := false, true
	l.fails.purge.Report(ctx, l.purge(ctx))
	for {
		if !retrying {
			if err := l.round(ctx, &stale); err != nil {
				retry.Reset(l.fails.round.Fail(ctx, err))
				retrying = true
			} else {
				l.fails.round.OK(ctx)
				if stale {
					continue // notifications were lost: rebuild now
				}
				l.mu.Lock()
				next, ok := l.delayed.next()
				l.mu.Unlock()
				if ok {
					delay.Reset(max(time.Until(next), time.Millisecond))
				}
			}
		}
		select {
		case <-retry.C:
			retrying = false
		case <-l.wake:
		case <-delay.C:
		case <-renew.C:
			ok, err := d.st.AcquireLease(ctx, leaseName, d.holder, d.cfg.LeaseTTL)
			if err != nil || !ok {
				d.log.Warn("scheduler lease lost; stepping down", "err", err)
				return
			}
		case <-nodesT.C:
			// A stale state is rebuilt with its nodes.
			if !stale && !l.fails.nodes.Waiting() {
				l.fails.nodes.Report(ctx, l.syncNodes(ctx))
			}
		case <-rescan.C:
			if !stale && !l.fails.rescan.Waiting() {
				l.fails.rescan.Report(ctx, l.rescan(ctx))
			}
		case <-purgeT.C:
			if !l.fails.purge.Waiting() {
				l.fails.purge.Report(ctx, l.purge(ctx))
			}
		case <-l.stopCh:
			return
		case <-ctx.Done():
			return
		}
	}
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

// rebuild loads the cluster from the store into a fresh scheduler: live
// nodes, queued runs, and bound runs as holds on their nodes.
func (l *leader) rebuild(ctx context.Context) error {
	d := l.d
	sched, err := scheduler.New(schedulerConfig(d.cfg))
	if err != nil {
		return err
	}
	// Drop what arrived so far: the reads below include it. What arrives
	// from now on is handled after, and handling twice is harmless.
	l.inMu.Lock()
	l.inbox, l.local, l.freed = nil, nil, nil
	l.inMu.Unlock()
	nodes, err := d.st.Nodes(ctx)
	if err != nil {
		return err
	}
	runs, err := d.st.ActiveRuns(ctx, "")
	if err != nil {
		return err
	}

	l.mu.Lock()
	l.sched = sched
	l.entries = map[string]*entry{}
	l.fresh = map[string]*entry{}
	l.nodes = map[string]*nodeEntry{}
	l.delayed = nil
	now := d.now()
	for _, n := range nodes {
		if now.Sub(n.Heartbeat) > d.cfg.HeartbeatTimeout {
			continue // syncNodes below requeues its runs
		}
		inv, err := decodeInventory(n.Inventory)
		if err != nil {
			d.log.Warn("node inventory unreadable; ignoring node", "node", n.ID, "err", err)
			continue
		}
		l.nodes[n.ID] = &nodeEntry{inv: inv, holds: map[string]hold{}}
	}
	var failed []store.Transition
	for _, r := range runs {
		l.remoteSeq = max(l.remoteSeq, r.Seq)
		switch r.Phase {
		case tasks.PhaseQueued, tasks.PhaseWaitingForResources:
			if t, bad := l.addPending(r); bad {
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
				if def, ok := d.cfg.Registry.Lookup(r.Project, r.Domain, r.Task); ok {
					h.cpu, h.mem = def.Request.MilliCPU, def.Request.MemoryBytes
				}
				ne.holds[r.Name] = h
			}
		}
	}
	for id, ne := range l.nodes {
		if _, err := sched.UpsertNode(effective(ne)); err != nil {
			d.log.Warn("node refused by the scheduler", "node", id, "err", err)
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

// addPending puts a queued run into the scheduler (or the delay heap). A
// run the scheduler cannot take (its task is unknown here, its request is
// invalid) comes back as a transition that fails it. l.mu is held.
func (l *leader) addPending(r *store.StoredRun) (store.Transition, bool) {
	if _, known := l.entries[r.Name]; known {
		return store.Transition{}, false
	}
	d := l.d
	def, ok := d.cfg.Registry.Lookup(r.Project, r.Domain, r.Task)
	if !ok {
		return failTransition(r, d.now(), fmt.Sprintf("task %s/%s/%s is not registered with the scheduler", r.Project, r.Domain, r.Task)), true
	}
	e := &entry{name: r.Name, run: scheduler.Run{
		ID: r.Name, Request: def.Request, Priority: r.Priority, Project: r.Project,
		Submitted: r.CreatedAt, Seq: uint64(r.Seq),
	}}
	d.log.Debug("pending", "run", r.Name, "phase", r.Phase, "not_before", r.NotBefore)
	if r.NotBefore.After(d.now()) {
		e.state, e.notBefore = stDelayed, r.NotBefore
		l.entries[r.Name] = e
		heap.Push(&l.delayed, e)
		return store.Transition{}, false
	}
	if err := l.sched.Enqueue(e.run); err != nil {
		return failTransition(r, d.now(), "cannot be scheduled: "+err.Error()), true
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
	if _, err := l.d.commitTransitions(ctx, ts); err != nil {
		return fmt.Errorf("fail %d unschedulable runs: %w", len(ts), err)
	}
	return nil
}

// forget drops what the scheduler knows of a run that ended or went back to
// the queue. l.mu is held.
func (l *leader) forget(name string) {
	e := l.entries[name]
	if e == nil {
		l.d.log.Debug("forget unknown", "run", name)
		return
	}
	l.d.log.Debug("forget", "run", name, "state", e.state)
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
				l.d.log.Warn("update node", "node", e.node, "err", err)
			}
		}
	}
	delete(l.entries, name)
	delete(l.fresh, name)
}

// step handles what arrived, then runs a scheduling round. It reports
// whether the state must be rebuilt from the store: after lost
// notifications, or a store error (then err).
func (l *leader) step(ctx context.Context) (rebuild bool, err error) {
	d := l.d
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
			e.node == d.cfg.Node.ID && e.attempt == f.attempt {
			l.forget(f.name)
		}
	}
	for _, n := range inbox {
		d.log.Debug("leader notification", "kind", n.Kind, "run", n.Run, "phase", n.Phase)
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
	now := d.now()
	for {
		e, ok := l.delayed.popDue(now)
		if !ok {
			break
		}
		d.log.Debug("due", "run", e.name, "removed", e.removed)
		if e.removed {
			continue
		}
		e.state = stWaiting
		if err := l.sched.Enqueue(e.run); err != nil {
			d.log.Error("requeue delayed run", "run", e.name, "err", err)
			delete(l.entries, e.name)
			continue
		}
	}
	l.mu.Unlock()

	// A read that fails leaves runs unknown: the rebuild reads them all.
	var add []*store.StoredRun
	for _, name := range requeued {
		r, err := d.st.GetRun(ctx, name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return true, fmt.Errorf("read requeued run %s: %w", name, err)
		}
		if err == nil && r.Phase == tasks.PhaseQueued {
			add = append(add, r)
		}
	}
	if pollRemote {
		rs, err := d.st.QueuedRunsAfter(ctx, l.remoteSeq, 10000)
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

// schedule runs one placement round and records its decisions. After an
// error the scheduler's state no longer matches the store's.
func (l *leader) schedule(ctx context.Context) error {
	d := l.d
	l.mu.Lock()
	bs := l.sched.Schedule()
	now := d.now()
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
	var waits []store.Transition
	for name, e := range l.fresh {
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
		if d.agent != nil {
			for i, b := range bs {
				if b.NodeID == d.cfg.Node.ID {
					ts[i].To, ts[i].Start = tasks.PhaseRunning, true
				}
			}
		}
		res, err := d.commitTransitions(ctx, ts)
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
			d.agent.start(res[i].Run, bs[i].Devices, true)
		}
	}
	if len(waits) > 0 {
		if _, err := d.commitTransitions(ctx, waits); err != nil {
			return fmt.Errorf("record %d waiting runs: %w", len(waits), err)
		}
	}
	return nil
}

// syncNodes reads the registered nodes: new or changed inventories go to
// the scheduler, and nodes silent past HeartbeatTimeout lose their runs.
func (l *leader) syncNodes(ctx context.Context) error {
	d := l.d
	nodes, err := d.st.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("read nodes: %w", err)
	}
	now := d.now()
	alive := map[string]bool{}
	var dead []string
	l.mu.Lock()
	for _, n := range nodes {
		if now.Sub(n.Heartbeat) > d.cfg.HeartbeatTimeout {
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
			d.log.Warn("node refused by the scheduler", "node", n.ID, "err", err)
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
	d := l.d
	runs, err := d.st.ActiveRuns(ctx, id)
	if err != nil {
		return fmt.Errorf("read runs of dead node %s: %w", id, err)
	}
	var ts []store.Transition
	for _, r := range runs {
		if r.Phase == tasks.PhaseInitializing || r.Phase == tasks.PhaseRunning {
			ts = append(ts, d.interruptTransition(r, fmt.Sprintf("node %s stopped heartbeating", id)))
		}
	}
	if len(ts) > 0 {
		if _, err := d.commitTransitions(ctx, ts); err != nil {
			return fmt.Errorf("requeue runs of dead node %s: %w", id, err)
		}
		// After the commit: a failed one is retried, and logged, apart.
		d.log.Warn("node lost; its runs requeued", "lost_node", id, "runs", len(ts))
	}
	l.mu.Lock()
	for _, rid := range l.sched.RemoveNode(id) {
		// Back in the scheduler's queue, but their requeue notification
		// re-adds them from the store with their new attempt.
		l.sched.Cancel(rid)
		if e := l.entries[rid]; e != nil {
			e.state = stWaiting
		}
	}
	delete(l.nodes, id)
	l.mu.Unlock()
	if err := d.st.DeleteNode(ctx, id); err != nil {
		return fmt.Errorf("forget dead node %s: %w", id, err)
	}
	return nil
}

// rescan re-reads queued runs committed since two rescans ago.
func (l *leader) rescan(ctx context.Context) error {
	d := l.d
	rs, err := d.st.QueuedRunsAfter(ctx, l.rescanFrom, 10000)
	if err != nil {
		return err
	}
	var failed []store.Transition
	l.mu.Lock()
	for _, r := range rs {
		l.remoteSeq = max(l.remoteSeq, r.Seq)
		if t, bad := l.addPending(r); bad {
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
	d := l.d
	var first error
	if d.cfg.Retention >= 0 {
		n, err := d.st.PurgeRuns(ctx, d.now().Add(-d.cfg.Retention))
		if err != nil {
			first = fmt.Errorf("purge inputs and outputs: %w", err)
		} else if n > 0 {
			d.log.Info("purged inputs and outputs of old runs", "runs", n)
		}
	}
	if d.cfg.DeleteAfter > 0 {
		// In batches, so that no transaction holds the writer long; a
		// backlog larger than the cap waits for the next purge.
		const batch, maxBatches = 1000, 100
		cut, total := d.now().Add(-d.cfg.DeleteAfter), 0
		for range maxBatches {
			n, err := d.st.DeleteRuns(ctx, cut, batch)
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
			d.log.Info("deleted old runs", "runs", total)
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

// deviceRef names a device in a run's record: its UUID when known, else
// its index, or parent:index for a MIG partition.
func deviceRef(d scheduler.Device) string {
	switch {
	case d.UUID != "":
		return d.UUID
	case d.MIG != "":
		return strconv.Itoa(d.Parent) + ":" + strconv.Itoa(d.Index)
	}
	return strconv.Itoa(d.Index)
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
