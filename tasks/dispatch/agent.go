package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/internal/backoff"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/discovery"
	"github.com/taskgate/taskgate/tasks/scheduler"
	"github.com/taskgate/taskgate/tasks/store"
)

// Causes of a cancelled attempt, read with context.Cause.
var (
	errTimedOut = errors.New("attempt timed out")
	errShutdown = errors.New("node agent shutting down")
	// errNodeLost: the node was declared dead and its runs requeued; the
	// attempt's outcome no longer matters.
	errNodeLost = errors.New("node was declared dead")
)

// abortError is the cause of an aborted attempt.
type abortError struct{ reason string }

func (e *abortError) Error() string { return "aborted: " + e.reason }

// maxEarlyReleases bounds the attempts whose resources the leader frees
// before their outcome is recorded: four of the transition writer's
// batches.
const maxEarlyReleases = 4 * maxTransitionBatch

// agentRescan is how often the agent re-reads the runs bound to its node,
// in case a notification was lost.
const agentRescan = 5 * time.Second

// agentStore is what the node agent reads and writes in the store itself:
// its node's record and the runs bound to it. Its phase changes go
// through a recorder. store.Store satisfies it.
type agentStore interface {
	UpsertNode(ctx context.Context, n store.Node) error
	Heartbeat(ctx context.Context, id string, at time.Time) error
	ActiveRuns(ctx context.Context, node string) ([]*store.StoredRun, error)
	BoundRuns(ctx context.Context, node string) ([]store.BoundRun, error)
	GetRun(ctx context.Context, name string) (*store.StoredRun, error)
}

var _ agentStore = store.Store(nil)

// agentDeps are what the node agent uses; the Dispatcher fills them in
// from its Config.
type agentDeps struct {
	st    agentStore
	trans recorder
	// lines keeps what tasks log through tasks.Logger.
	lines *logWriter
	// progress keeps what tasks report through tasks.Progress.
	progress *progressWriter
	log      *slog.Logger
	now      func() time.Time
	// registry and caps say which function runs a task and how its
	// attempts' ends count.
	registry *tasks.Registry
	caps     caps
	nodeCfg  NodeConfig
	// Config's durations of the same names.
	heartbeatInterval, abortGrace time.Duration
	// closed reports whether the dispatcher is closing: an outcome the
	// store refuses then is left to the restart's recovery.
	closed func() bool
	// tracer makes each attempt's span.
	tracer trace.Tracer

	// released tells this process's leader that an attempt here returned,
	// so that what it held is free before its outcome is committed: the
	// in-process route of "Hand-offs" in doc.go. Nil without a local
	// leader.
	released func(name string, attempt int)
	// handedOver is set when this process's leader hands the runs it
	// binds to this node over by runStarted: the notifications of its
	// bindings (Local) then concern attempts already here or refused, and
	// reading each run back would cost a read per run.
	handedOver bool
}

// agent executes the runs bound to its node. Runs reach it by the two
// routes of "Hand-offs" in doc.go: runStarted within this process, notify
// (and its rescans) from the store.
type agent struct {
	agentDeps
	id    string
	node  scheduler.Node
	byRef map[string]scheduler.Device

	mu       sync.Mutex
	execs    map[string]*execution
	draining bool
	wg       sync.WaitGroup
	// execCtx parents every attempt; it outlives Close's ctx so that the
	// attempts can be requeued after it.
	execCtx context.Context

	inMu  sync.Mutex
	inbox []store.Notification
	wake  chan struct{}

	// unrecorded counts the attempts whose outcome is being recorded.
	unrecorded atomic.Int64

	// fails pace and log the store errors of the agent's loops: its
	// heartbeats, its reads of the runs bound to it, and its writes of
	// their phases (running, outcomes), which all attempts share.
	fails struct{ heartbeat, reads, records *backoff.Failures }
}

type execution struct {
	attempt int
	cancel  context.CancelCauseFunc
}

func newAgent(deps agentDeps) *agent {
	nc := deps.nodeCfg
	node := discovery.LocalNode(nc.ID, nc.GPUs)
	if nc.MilliCPU > 0 {
		node.MilliCPU = nc.MilliCPU
	}
	if nc.MemoryBytes > 0 {
		node.MemoryBytes = nc.MemoryBytes
	}
	for k, v := range nc.Labels {
		node.Labels[k] = v
	}
	a := &agent{
		agentDeps: deps, id: nc.ID, node: node, byRef: map[string]scheduler.Device{},
		execs: map[string]*execution{}, wake: make(chan struct{}, 1),
		execCtx: context.Background(),
	}
	for _, dev := range node.Devices {
		a.byRef[deviceRef(dev)] = dev
	}
	a.fails.heartbeat = failures(deps.log, "node heartbeat")
	a.fails.reads = failures(deps.log, "read runs of this node")
	a.fails.records = failures(deps.log, "record phase of a run")
	return a
}

// recover requeues the runs this node had in flight when its previous
// process died, as interruptions (or fails those past MaxInterruptions).
func (a *agent) recover(ctx context.Context) error {
	runs, err := a.st.ActiveRuns(ctx, a.id)
	if err != nil {
		return fmt.Errorf("dispatch: recover runs of node %s: %w", a.id, err)
	}
	var ts []store.Transition
	for _, r := range runs {
		if r.Phase == tasks.PhaseInitializing || r.Phase == tasks.PhaseRunning {
			def, _ := a.registry.Lookup(r.Project, r.Domain, r.Task)
			ts = append(ts, interruptTransition(r, a.caps.limits(def), a.now(), fmt.Sprintf("node %s restarted during attempt %d", a.id, r.Attempt)))
		}
	}
	if len(ts) == 0 {
		return nil
	}
	a.log.Warn("recovering runs interrupted by a restart", "runs", len(ts))
	if _, err := a.trans.commit(ctx, ts); err != nil {
		return fmt.Errorf("dispatch: recover runs of node %s: %w", a.id, err)
	}
	return nil
}

func (a *agent) register(ctx context.Context) error {
	inv, err := encodeInventory(a.node)
	if err != nil {
		return err
	}
	now := a.now()
	if err := a.st.UpsertNode(ctx, store.Node{ID: a.id, Inventory: inv, Heartbeat: now, StartedAt: now}); err != nil {
		return fmt.Errorf("dispatch: register node %s: %w", a.id, err)
	}
	return nil
}

// notify takes the store notifications that concern this node: the store
// route of "Hand-offs" in doc.go. An attempt already handed over by
// runStarted is skipped (has).
func (a *agent) notify(n store.Notification) {
	switch n.Kind {
	case store.NotifyEvent:
		if n.Phase != tasks.PhaseInitializing || n.Node != a.id || (n.Local && a.handedOver) {
			return
		}
	case store.NotifyAbort:
		if n.Node != a.id {
			return
		}
	case store.NotifyOverflow:
	default:
		return
	}
	a.inMu.Lock()
	a.inbox = append(a.inbox, n)
	a.inMu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *agent) run(ctx context.Context) {
	// Heartbeats have their own goroutine so that a busy agent loop never
	// makes its node look dead.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.heartbeat(ctx) })
	rescan := time.NewTicker(agentRescan)
	defer rescan.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rescan.C:
			a.rescan(ctx)
		case <-a.wake:
			a.inMu.Lock()
			inbox := a.inbox
			a.inbox = nil
			a.inMu.Unlock()
			for _, n := range inbox {
				switch n.Kind {
				case store.NotifyOverflow:
					a.rescan(ctx)
				case store.NotifyAbort:
					a.abort(n.Run, "")
				case store.NotifyEvent:
					if a.has(n.Run, n.Attempt) {
						continue
					}
					r, err := a.st.GetRun(ctx, n.Run)
					if ctx.Err() == nil {
						a.fails.reads.Report(ctx, err, slog.String("run", n.Run))
					}
					if err != nil {
						continue // the rescan reads it again
					}
					if r.Phase == tasks.PhaseInitializing && r.Node == a.id {
						a.assign(r, a.devices(r.Devices))
					}
				}
			}
		}
	}
}

// heartbeat keeps the node alive in the store. Its pace is the interval
// whatever the errors: a node that reported less often would be declared
// dead sooner; only the logs of its failures are spaced.
func (a *agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(a.heartbeatInterval)
	defer t.Stop()
	lost := false // declared dead, not registered again yet
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := a.st.Heartbeat(ctx, a.id, a.now())
		if errors.Is(err, store.ErrNotFound) {
			if !lost {
				a.log.Warn("node was declared dead; dropping its attempts and registering again")
			}
			a.cancelAll(errNodeLost)
			err = a.register(ctx)
			lost = err != nil
		}
		if ctx.Err() == nil {
			a.fails.heartbeat.Report(ctx, err)
		}
	}
}

// rescan starts bound runs it missed and cancels the ones asked to abort.
// It reads the bound runs' names, attempts and abort requests only, and
// whole only those it missed: a node busy with thousands of attempts
// would otherwise read all their inputs every agentRescan (issue 19).
// After a store error it waits out the backoff, skipping turns.
func (a *agent) rescan(ctx context.Context) {
	if a.fails.reads.Waiting() {
		return
	}
	bound, err := a.st.BoundRuns(ctx, a.id)
	if ctx.Err() == nil {
		a.fails.reads.Report(ctx, err)
	}
	if err != nil {
		return
	}
	for _, b := range bound {
		switch {
		case b.Phase == tasks.PhaseInitializing && !a.has(b.Name, b.Attempt):
			r, err := a.st.GetRun(ctx, b.Name)
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted since
			}
			if ctx.Err() == nil {
				a.fails.reads.Report(ctx, err, slog.String("run", b.Name))
			}
			if err != nil {
				continue // the next rescan reads it again
			}
			// Also when asked to abort: execute records it at once.
			if r.Phase == tasks.PhaseInitializing && r.Node == a.id {
				a.assign(r, a.devices(r.Devices))
			}
		case b.AbortRequested:
			a.abort(b.Name, b.AbortReason)
		}
	}
}

func (a *agent) devices(refs []string) []scheduler.Device {
	out := make([]scheduler.Device, 0, len(refs))
	for _, ref := range refs {
		if dev, ok := a.byRef[ref]; ok {
			out = append(out, dev)
		}
	}
	return out
}

// has reports whether the agent executes (or has just finished) the
// attempt of the run.
func (a *agent) has(name string, attempt int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.execs[name]
	return e != nil && e.attempt >= attempt
}

// abort cancels a local attempt; its run becomes aborted when the function
// returns or after AbortGrace.
func (a *agent) abort(name, reason string) {
	a.mu.Lock()
	e := a.execs[name]
	a.mu.Unlock()
	if e != nil {
		e.cancel(&abortError{reason: reason})
	}
}

func (a *agent) cancelAll(cause error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.execs {
		e.cancel(cause)
	}
}

// drain stops taking runs and waits for the running attempts until ctx is
// done; those still running are then cancelled and requeued.
func (a *agent) drain(ctx context.Context) {
	a.mu.Lock()
	a.draining = true
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	a.cancelAll(errShutdown)
	<-done
}

// assign starts executing a run bound to this node, unless it already runs.
func (a *agent) assign(r *store.StoredRun, devs []scheduler.Device) { a.start(r, devs, false) }

// runStarted executes a run this process's leader bound to this node and
// recorded running: the in-process route of "Hand-offs" in doc.go. Its
// notification, which comes after, finds the attempt running here.
func (a *agent) runStarted(r *store.StoredRun, devs []scheduler.Device) { a.start(r, devs, true) }

// start executes r; running says the run was already recorded as running.
func (a *agent) start(r *store.StoredRun, devs []scheduler.Device, running bool) {
	a.mu.Lock()
	// The previous attempt's goroutine may still be unwinding after its
	// outcome was recorded; a newer attempt replaces it.
	if prev := a.execs[r.Name]; a.draining || (prev != nil && prev.attempt >= r.Attempt) {
		a.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancelCause(a.execCtx)
	ex := &execution{attempt: r.Attempt, cancel: cancel}
	a.execs[r.Name] = ex
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		defer func() {
			a.mu.Lock()
			if a.execs[r.Name] == ex {
				delete(a.execs, r.Name)
			}
			a.mu.Unlock()
			cancel(nil)
		}()
		a.execute(ctx, r, devs, running)
	}()
}

type outcome struct {
	out      json.RawMessage
	err      error
	returned bool
}

func (a *agent) execute(ctx context.Context, r *store.StoredRun, devs []scheduler.Device, running bool) {
	def, ok := a.registry.Lookup(r.Project, r.Domain, r.Task)
	if !ok {
		a.finish(r, nil, outcome{returned: true, err: tasks.Permanent(fmt.Errorf("task %s/%s/%s is not registered on node %s", r.Project, r.Domain, r.Task, a.id))}, nil)
		return
	}
	if !running {
		res, err := a.trans.record(store.Transition{Run: r.Name, Attempt: r.Attempt, From: []tasks.Phase{tasks.PhaseInitializing},
			To: tasks.PhaseRunning, At: a.now()})
		a.fails.records.Report(context.Background(), err, slog.String("run", r.Name))
		if err != nil {
			return // the rescan or a restart's recovery picks the run up again
		}
		if !res.Applied {
			return // aborted, or requeued after this node was thought dead
		}
		r = res.Run
	}
	if r.AbortRequested {
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		cancel(&abortError{reason: r.AbortReason})
		a.finish(r, def, outcome{}, context.Cause(ctx))
		return
	}

	ctx, span := startAttempt(ctx, a.tracer, r, a.id)
	runCtx, cancel := context.WithTimeoutCause(ctx, def.Timeout, errTimedOut)
	defer cancel()
	logger := slog.New(&runLogHandler{w: a.lines, run: r.Name, attempt: r.Attempt, now: a.now})
	info := tasks.RunInfo{
		Name: r.Name, Attempt: r.Attempt, Node: a.id, Devices: scheduler.TaskDevices(devs),
		Caller: r.Caller.Identity(),
		Logger: logger,
	}
	results := make(chan outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				a.log.Error("task panicked", "run", r.Name, "panic", p, "stack", string(debug.Stack()))
				results <- outcome{returned: true, err: fmt.Errorf("task panicked: %v", p)}
			}
		}()
		taskCtx := tasks.WithProgressReporter(tasks.WithRunInfo(runCtx, info), a.progress.reporter(r.Name, r.Attempt))
		out, err := def.Invoke(taskCtx, r.Inputs)
		results <- outcome{out: out, err: err, returned: true}
	}()
	var o outcome
	select {
	case o = <-results:
	case <-runCtx.Done():
		grace := a.abortGrace
		if errors.Is(context.Cause(runCtx), errShutdown) {
			grace = min(grace, time.Second)
		}
		t := time.NewTimer(grace)
		select {
		case o = <-results:
		case <-t.C:
		}
		t.Stop()
	}
	var cause error
	if runCtx.Err() != nil {
		cause = context.Cause(runCtx)
	}
	endAttempt(span, a.finish(r, def, o, cause), o.err)
}

// finish records the attempt's outcome, as decide says: the run's end, or
// another attempt; it returns the run's phase after it ("" when the node
// was lost, which leaves the outcome to the leader).
func (a *agent) finish(r *store.StoredRun, def *tasks.Definition, o outcome, cause error) tasks.Phase {
	if errors.Is(cause, errNodeLost) {
		return ""
	}
	// While few outcomes wait to be recorded, what the attempt held is
	// freed now; past maxEarlyReleases it is freed when its outcome
	// commits (the leader hears of it then), so that binding does not
	// outrun the recording of outcomes: a drain of a million runs had
	// a hundred thousand returned attempts waiting, each a goroutine
	// (issue 19).
	if n := a.unrecorded.Add(1); a.released != nil && n <= maxEarlyReleases {
		a.released(r.Name, r.Attempt)
	}
	defer a.unrecorded.Add(-1)
	e := ending{kind: endReturned, outputs: o.out, err: o.err}
	var abort *abortError
	switch {
	case errors.As(cause, &abort):
		e = ending{kind: endAborted, why: abort.reason}
		if e.why == "" {
			if cur, err := a.st.GetRun(context.Background(), r.Name); err == nil {
				e.why = cur.AbortReason
			}
		}
	case errors.Is(cause, errShutdown):
		e = ending{kind: endDrained, why: fmt.Sprintf("node %s shut down during attempt %d", a.id, r.Attempt)}
	case errors.Is(cause, errTimedOut):
		e = ending{kind: endTimedOut}
	}
	now := a.now()
	t := decide(r, e, a.caps.limits(def), now, rand.Float64())
	t.Run, t.Attempt, t.At = r.Name, r.Attempt, now
	t.From = []tasks.Phase{tasks.PhaseInitializing, tasks.PhaseRunning}
	// A store that fails now (a lost connection) may not fail in a
	// moment, and an outcome not recorded leaves the run running for good:
	// try again. While the store is unavailable (store.ErrUnavailable: a
	// full disk, a lost database) the tries go on, at the backoff's pace,
	// until it is back; another error is given up after outcomePauses.
	bg := context.Background()
	others := 0 // refusals for another reason
	for {
		_, err := a.trans.record(t)
		if err == nil {
			a.fails.records.OK(bg)
			return t.To
		}
		wait := a.fails.records.Fail(bg, err, slog.String("run", r.Name), slog.String("phase", string(t.To)))
		unavailable := errors.Is(err, store.ErrUnavailable)
		// Closing: recovery after the restart requeues the run anyway.
		if a.closed() || (!unavailable && others == len(outcomePauses)) {
			a.log.Error("record outcome; given up", "run", r.Name, "phase", t.To, "err", err)
			return t.To
		}
		if !unavailable {
			wait = outcomePauses[others]
			others++
		}
		time.Sleep(wait)
	}
}

// outcomePauses are the waits between the tries to record an outcome that
// the store refused for another reason than unavailability: about 8 s in
// all.
var outcomePauses = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 5 * time.Second}
