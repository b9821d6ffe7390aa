package dispatch

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/internal/backoff"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// Errors callers match with errors.Is.
var (
	// ErrNotFound: no run of that name.
	ErrNotFound = errors.New("dispatch: run not found")
	// ErrIdempotencyConflict: the idempotency key was used by the same
	// caller for a different request.
	ErrIdempotencyConflict = errors.New("dispatch: idempotency key reused with a different request")
	// ErrAlreadyDone: the run is in a terminal phase.
	ErrAlreadyDone = errors.New("dispatch: run already finished")
	// ErrClosed: the dispatcher is draining, closing or closed.
	ErrClosed = errors.New("dispatch: closed")
)

// Dispatcher accepts runs, stores them durably, schedules them and (with
// a node agent) executes them. See the package documentation.
//
// It is the public API and the wiring: it builds the long-lived parts (the
// submit and transition writers, the log writer, the leader, the agent),
// each given the few dependencies it uses, joins their hand-offs (see
// "Hand-offs" in the package documentation) and fans the store's
// notifications out to them. No part holds the Dispatcher.
type Dispatcher struct {
	cfg Config
	st  store.Store
	log *slog.Logger
	now func() time.Time
	// tracer makes the submit's and the attempts' spans.
	tracer trace.Tracer

	submits *submitWriter
	trans   *transitionWriter
	writers sync.WaitGroup

	logs       *logWriter
	progress   *progressWriter
	deliveries hooks
	watch      watchers
	subs       subscribers

	leader *leader
	agent  *agent

	bg       context.Context // cancelled by Close, after draining
	stopBG   context.CancelFunc
	loops    sync.WaitGroup
	started  atomic.Bool
	closed   atomic.Bool
	closeErr error

	// running is set once Start succeeded; draining once Drain began.
	running   atomic.Bool
	draining  atomic.Bool
	drainOnce sync.Once
}

// New validates cfg and returns a dispatcher that accepts Submit at once;
// Start begins scheduling and execution.
func New(cfg Config) (*Dispatcher, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// holder names this process in the scheduler lease.
	holder := cfg.Node.ID + "/" + randomString(8)
	d := &Dispatcher{
		cfg:    cfg,
		st:     cfg.Store,
		now:    cfg.Clock,
		log:    cfg.Logger.With("component", "dispatch", "instance", holder),
		tracer: newTracer(cfg.TracerProvider),
	}
	d.bg, d.stopBG = context.WithCancel(context.Background())
	d.logs = newLogWriter(d.st, d.log)
	d.progress = newProgressWriter(d.st, d.log, d.now)
	d.subs.init()
	d.subs.read = d.readEvent
	d.trans = newTransitionWriter(d.st, d.logs, d.progress, d.publishLocal, cfg.Observer, d.tracer)
	caps := caps{maxInterruptions: cfg.MaxInterruptions, maxOutputBytes: cfg.MaxOutputBytes}
	if cfg.Role.runsLeader() {
		l, err := newLeader(leaderDeps{
			st:                d.st,
			trans:             d.trans,
			log:               d.log,
			now:               d.now,
			registry:          cfg.Registry,
			caps:              caps,
			holder:            holder,
			localNode:         cfg.Node.ID,
			schedConfig:       schedulerConfig(cfg),
			leaseTTL:          cfg.LeaseTTL,
			heartbeatInterval: cfg.HeartbeatInterval,
			heartbeatTimeout:  cfg.HeartbeatTimeout,
			retention:         cfg.Retention,
			deleteAfter:       cfg.DeleteAfter,
			obs:               cfg.Observer,
			tracer:            d.tracer,
		})
		if err != nil {
			return nil, err
		}
		d.leader = l
	}
	if cfg.Role.runsAgent() {
		d.agent = newAgent(agentDeps{
			st:                d.st,
			trans:             d.trans,
			lines:             d.logs,
			progress:          d.progress,
			log:               d.log,
			now:               d.now,
			registry:          cfg.Registry,
			caps:              caps,
			nodeCfg:           cfg.Node,
			heartbeatInterval: cfg.HeartbeatInterval,
			abortGrace:        cfg.AbortGrace,
			closed:            d.closed.Load,
			tracer:            d.tracer,
		})
	}
	if d.leader != nil && d.agent != nil {
		// The in-process hand-offs between the two (see "Hand-offs" in
		// doc.go), wired once both exist.
		d.leader.runStarted = d.agent.runStarted
		d.agent.released, d.agent.handedOver = d.leader.released, true
	}
	d.submits = newSubmitWriter(d.st, d.log, &d.subs, cfg.Observer, d.tracer)
	if d.leader != nil {
		d.submits.submitted = d.leader.submitted
	}
	// Two submit writers: one builds its batch while the other commits.
	for range 2 {
		d.writers.Go(d.submits.run)
	}
	d.writers.Go(d.trans.run)
	// Subscribe before anything can commit, so no notification is missed.
	notes := d.st.Listen(d.bg)
	d.loops.Go(func() { d.listen(notes) })
	d.loops.Go(func() { d.logs.run(d.bg) })
	d.loops.Go(func() { d.progress.run(d.bg) })
	d.loops.Go(func() { d.subs.run(d.bg) })
	return d, nil
}

// Start recovers the runs the local node had in flight (they go back to the
// queue as a new attempt, an interruption that spends no retry, or fail
// past MaxInterruptions), registers the node, and starts the scheduler
// candidate and the node agent.
func (d *Dispatcher) Start(ctx context.Context) error {
	if d.closed.Load() || d.draining.Load() {
		return ErrClosed
	}
	if d.started.Swap(true) {
		return errors.New("dispatch: already started")
	}
	if d.agent != nil {
		if err := d.agent.recover(ctx); err != nil {
			return err
		}
		if err := d.agent.register(ctx); err != nil {
			return err
		}
		d.loops.Go(func() { d.agent.run(d.bg) })
	}
	if d.leader != nil {
		d.leader.start(d.bg, &d.loops)
	}
	d.running.Store(true)
	return nil
}

// Close drains (see Drain) unless Drain already ran, then stops the
// dispatcher's loops and deregisters the node. It does not close the
// store.
func (d *Dispatcher) Close(ctx context.Context) error {
	if d.closed.Swap(true) {
		return d.closeErr
	}
	d.Drain(ctx)
	// Everything that writes transitions has stopped: drain the writers.
	d.trans.close()
	d.writers.Wait()
	d.logs.flush(context.WithoutCancel(ctx))
	d.progress.flush(context.WithoutCancel(ctx))
	d.stopBG()
	d.loops.Wait()
	if d.agent != nil {
		if err := d.st.DeleteNode(context.WithoutCancel(ctx), d.cfg.Node.ID); err != nil && !errors.Is(err, store.ErrClosed) {
			d.closeErr = err
		}
	}
	return d.closeErr
}

// failures paces and logs the store errors of one of the dispatcher's
// loops, under msg: a line when it starts failing, one every 30 s while
// it fails, one when it recovers (see internal/backoff).
func failures(log *slog.Logger, msg string) *backoff.Failures {
	return backoff.New(backoff.Config{Logger: log, Msg: msg})
}

// Get returns a run with its attempts, or ErrNotFound.
func (d *Dispatcher) Get(ctx context.Context, name string) (*tasks.Run, error) {
	sr, err := d.st.GetRun(ctx, name)
	if err != nil {
		return nil, mapErr(err)
	}
	return &sr.Run, nil
}

func mapErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, store.ErrAlreadyDone):
		return ErrAlreadyDone
	case errors.Is(err, store.ErrClosed):
		return ErrClosed
	}
	return err
}

// QueuePosition returns a waiting run's 1-based place in the queue and why
// it waits, as the active scheduler sees it; 0 and "" when the run is not
// waiting or the scheduler runs in another process.
func (d *Dispatcher) QueuePosition(name string) (pos int, reason string) {
	if d.leader == nil {
		return 0, ""
	}
	return d.leader.position(name)
}

// ListOptions select runs for List.
type ListOptions struct {
	// Owner keeps the runs of one subject; empty keeps all.
	Owner  string
	Phases []tasks.Phase
	// Task is "project/domain/name" or empty.
	Task string
	// CreatedAfter keeps runs created at or after it, CreatedBefore runs
	// created before it; zero is no bound.
	CreatedAfter, CreatedBefore time.Time
	// Cursor is the nextCursor of the previous page, or empty.
	Cursor string
	// Limit is the page size: default 50, at most 500.
	Limit int
}

// ErrBadCursor: a List cursor that List did not make.
var ErrBadCursor = errors.New("dispatch: invalid cursor")

// List returns runs newest first, without attempts, and the cursor of the
// next page ("" after the last).
func (d *Dispatcher) List(ctx context.Context, o ListOptions) ([]*tasks.Run, string, error) {
	limit := o.Limit
	switch {
	case limit <= 0:
		limit = 50
	case limit > 500:
		limit = 500
	}
	var before int64
	if o.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(o.Cursor)
		if err == nil {
			before, err = strconv.ParseInt(string(b), 10, 64)
		}
		if err != nil || before <= 0 {
			return nil, "", ErrBadCursor
		}
	}
	srs, err := d.st.ListRuns(ctx, store.RunFilter{
		Owner: o.Owner, Phases: o.Phases, Task: o.Task, CreatedAfter: o.CreatedAfter, CreatedBefore: o.CreatedBefore,
		BeforeSeq: before, Limit: limit + 1,
	})
	if err != nil {
		return nil, "", mapErr(err)
	}
	next := ""
	if len(srs) > limit {
		srs = srs[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(srs[limit-1].Seq, 10)))
	}
	runs := make([]*tasks.Run, len(srs))
	for i, sr := range srs {
		runs[i] = &sr.Run
	}
	return runs, next, nil
}

// Abort stops a run: a queued or waiting run is aborted at once; a running
// run has its context cancelled and becomes aborted when its function
// returns, or after AbortGrace if it does not. A finished run gives
// ErrAlreadyDone with the run.
func (d *Dispatcher) Abort(ctx context.Context, name, reason string) (*tasks.Run, error) {
	res, err := d.st.RequestAbort(ctx, name, reason, d.now())
	if err != nil {
		if res.Run != nil {
			return &res.Run.Run, mapErr(err)
		}
		return nil, mapErr(err)
	}
	if res.Terminal {
		d.cfg.Observer.RunFinished(taskID(&res.Run.Run), res.Run.Phase, res.Event.At.Sub(res.Run.CreatedAt))
		d.publishLocal(res.Run.Run, res.Event)
	} else if d.agent != nil && res.Run.Node == d.cfg.Node.ID {
		// The in-process route to this node's agent; another node's
		// hears of it through the store (see "Hand-offs" in doc.go).
		d.agent.abort(name, res.Run.AbortReason)
	}
	return &res.Run.Run, nil
}

// LogLine is a line a task wrote with tasks.Logger(ctx).
type LogLine = store.LogLine

// Logs returns the lines the run's attempts logged, oldest first. Lines
// are buffered for up to logFlushInterval while a run executes.
func (d *Dispatcher) Logs(ctx context.Context, name string) ([]LogLine, error) {
	if _, err := d.st.GetRun(ctx, name); err != nil {
		return nil, mapErr(err)
	}
	return d.st.Logs(ctx, name)
}
