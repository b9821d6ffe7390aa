package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

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

// settleDelay is how long the queue must go without a binding before
// the runs left waiting are recorded waiting_for_resources.
const settleDelay = time.Second

// leaderStore is what the leader reads and writes in the store itself:
// the lease, the nodes, the runs to place and the old runs to purge. Its
// phase changes go through a committer. store.Store satisfies it.
type leaderStore interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	Nodes(ctx context.Context) ([]store.Node, error)
	DeleteNode(ctx context.Context, id string) error
	ActiveRuns(ctx context.Context, node string) ([]*store.StoredRun, error)
	ActivePlacements(ctx context.Context) ([]store.Placement, error)
	GetRun(ctx context.Context, name string) (*store.StoredRun, error)
	QueuedRunsAfter(ctx context.Context, afterSeq int64, limit int) ([]*store.StoredRun, error)
	PurgeRuns(ctx context.Context, finishedBefore time.Time) (int, error)
	DeleteRuns(ctx context.Context, finishedBefore time.Time, limit int) (int, error)
}

var _ leaderStore = store.Store(nil)

// leaderDeps are what the leader uses; the Dispatcher fills them in from
// its Config.
type leaderDeps struct {
	st    leaderStore
	trans committer
	log   *slog.Logger
	now   func() time.Time
	// registry and caps say what the runs the leader places and requeues
	// request and how often they may be interrupted.
	registry *tasks.Registry
	caps     caps
	// holder names this process in the lease; localNode is this
	// process's own node, where the attempts given to released ran.
	holder, localNode string
	schedConfig       scheduler.Config
	// Config's durations of the same names.
	leaseTTL, heartbeatInterval, heartbeatTimeout time.Duration
	retention, deleteAfter                        time.Duration
	// obs hears of each placement round; tracer records the rounds that
	// bind runs.
	obs    Observer
	tracer trace.Tracer

	// runStarted executes at once a run bound to this process's node and
	// recorded running in the commit that bound it: the in-process route
	// of "Hand-offs" in doc.go. Nil without a local agent (then the run is
	// only recorded initializing, and its agent hears of it through the
	// store).
	runStarted func(r *store.StoredRun, devs []scheduler.Device)
}

// leader is the scheduler candidate. While it holds the lease it owns a
// scheduler.Scheduler, fed from the store, and turns its bindings into
// initializing runs. Every decision is a conditional store transition, so
// a deposed leader that has not noticed yet cannot double-book a run.
//
// Work reaches it by the two routes of "Hand-offs" in doc.go: submitted
// and released within this process, notify from the store. It answers
// questions about its state through methods (position, summary); nothing
// outside takes its locks.
type leader struct {
	leaderDeps
	// running is set when start launched the loop, so stop waits for a
	// loop that exists (Start may fail before launching it).
	running atomic.Bool
	// leading is set while this candidate holds the lease and leads, from
	// just before the state is loaded: only then does the inbox below
	// fill, so a standby keeps nothing of what it sees.
	leading atomic.Bool

	// mu guards the state below; the loop releases it around store I/O so
	// that QueuePosition stays cheap.
	mu     sync.Mutex
	active bool
	// sched holds the waiting runs: for each only what placing it needs
	// (its name, priority, project, request and place), so that a backlog
	// of a million costs the leader little heap (issue 19). entries holds
	// the others the leader knows: delayed, bound, held.
	sched   *scheduler.Scheduler
	entries map[string]*entry
	// fresh names runs that entered the scheduler's queue while their
	// stored phase was queued: after a round that leaves them waiting they
	// are recorded waiting_for_resources. Names of runs bound or gone
	// meanwhile stay until then (or until compactFresh), and are skipped.
	fresh   []string
	nodes   map[string]*nodeEntry
	delayed delayHeap

	// lastBind is when a round last bound runs; unsettled is set by a
	// round that left fresh runs unrecorded because of it: another round
	// follows settleDelay after lastBind.
	lastBind  time.Time
	unsettled bool

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

func newLeader(deps leaderDeps) (*leader, error) {
	if _, err := scheduler.New(deps.schedConfig); err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	l := &leader{leaderDeps: deps, wake: make(chan struct{}, 1), stopCh: make(chan struct{}), done: make(chan struct{})}
	l.fails.lease = failures(deps.log, "scheduler lease")
	l.fails.round = failures(deps.log, "scheduling round")
	l.fails.nodes = failures(deps.log, "scheduler: check nodes")
	l.fails.rescan = failures(deps.log, "scheduler: rescan queued runs")
	l.fails.purge = failures(deps.log, "purge old runs")
	return l, nil
}

// maxBindingsPerRound caps the runs one round binds: their commit is one
// transaction, and the first of a large backlog's runs (after a restart,
// 6,400 fit a 64-core node at 10m each) start once it returns. A round
// that reaches the cap is followed by another at once.
const maxBindingsPerRound = 1024

func schedulerConfig(c Config) scheduler.Config {
	return scheduler.Config{Strategy: c.Strategy, ProjectGPUQuota: c.Quotas, MaxBindingsPerRound: maxBindingsPerRound}
}

func (l *leader) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// notify takes a store notification (from the listener goroutine): the
// store route of "Hand-offs" in doc.go, which skips what submitted
// handed over already.
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

// submitted hands over runs this process just committed (from the submit
// writer): the in-process route of "Hand-offs" in doc.go.
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
// node is over: its function returned and its outcome is being written
// (the in-process route of "Hand-offs" in doc.go; the outcome's
// notification follows by the store's).
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

// start launches the loop on loops; stop ends it.
func (l *leader) start(ctx context.Context, loops *sync.WaitGroup) {
	l.running.Store(true)
	loops.Go(func() { l.run(ctx) })
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

// summary is the active scheduler's view of its queue, for Queue; leading
// is false (and s empty) while this candidate does not lead.
func (l *leader) summary() (s scheduler.QueueSummary, leading bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.active {
		return scheduler.QueueSummary{}, false
	}
	return l.sched.QueueSummary(), true
}

// run campaigns for the lease and leads while it holds it.
func (l *leader) run(ctx context.Context) {
	defer close(l.done)
	for ctx.Err() == nil && !l.stopped() {
		ok, err := l.st.AcquireLease(ctx, leaseName, l.holder, l.leaseTTL)
		if ctx.Err() == nil {
			// Campaigns keep their pace whatever the error: a longer
			// wait would only delay the takeover.
			l.fails.lease.Report(ctx, err)
		}
		if ok {
			l.log.Info("scheduler lease acquired; leading")
			l.lead(ctx)
			continue
		}
		select {
		case <-ctx.Done():
		case <-l.stopCh:
		case <-time.After(l.leaseTTL / 3):
		}
	}
}

func (l *leader) lead(ctx context.Context) {
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
		if err := l.st.ReleaseLease(context.WithoutCancel(ctx), leaseName, l.holder); err != nil {
			l.fails.lease.Fail(ctx, err)
		}
	}()
	// Before rebuild reads the store: what commits after that read
	// reaches the inbox.
	l.leading.Store(true)
	renew := time.NewTicker(l.leaseTTL / 3)
	defer renew.Stop()
	nodesT := time.NewTicker(l.heartbeatInterval)
	defer nodesT.Stop()
	rescan := time.NewTicker(rescanInterval)
	defer rescan.Stop()
	// Purge and delete at a tenth of the shorter period (1s to 1h), so
	// that runs outlive it by at most a tenth.
	purgeEvery := time.Hour
	for _, p := range []time.Duration{l.retention, l.deleteAfter} {
		if p > 0 {
			purgeEvery = min(purgeEvery, max(p/10, time.Second))
		}
	}
	purgeT := time.NewTicker(purgeEvery)
	defer purgeT.Stop()
	delay := time.NewTimer(time.Hour)
	defer delay.Stop()
	settle := time.NewTimer(time.Hour)
	defer settle.Stop()
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
				unsettled, settled := l.unsettled, l.lastBind.Add(settleDelay)
				l.mu.Unlock()
				if ok {
					delay.Reset(max(time.Until(next), time.Millisecond))
				}
				if unsettled {
					settle.Reset(max(time.Until(settled), time.Millisecond))
				}
			}
		}
		select {
		case <-retry.C:
			retrying = false
		case <-l.wake:
		case <-delay.C:
		case <-settle.C:
		case <-renew.C:
			ok, err := l.st.AcquireLease(ctx, leaseName, l.holder, l.leaseTTL)
			if err != nil || !ok {
				l.log.Warn("scheduler lease lost; stepping down", "err", err)
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
