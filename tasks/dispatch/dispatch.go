package dispatch

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskgate/taskgate/internal/backoff"
	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/scheduler"
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

// Role says which parts of the dispatcher a process runs.
type Role int

const (
	// RoleAll runs the API, a scheduler candidate and a local node agent:
	// the single-process deployment. The default.
	RoleAll Role = iota
	// RoleAPI accepts and serves runs and competes for the scheduler
	// lease, but executes nothing.
	RoleAPI
	// RoleAgent only executes the runs bound to its node.
	RoleAgent
)

func (r Role) String() string {
	switch r {
	case RoleAll:
		return "all"
	case RoleAPI:
		return "api"
	case RoleAgent:
		return "agent"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// ParseRole reads "all", "api" or "agent" (TASKGATE_ROLE).
func ParseRole(s string) (Role, error) {
	switch s {
	case "", "all":
		return RoleAll, nil
	case "api":
		return RoleAPI, nil
	case "agent":
		return RoleAgent, nil
	}
	return 0, fmt.Errorf("dispatch: unknown role %q (want all, api or agent)", s)
}

func (r Role) runsAgent() bool  { return r == RoleAll || r == RoleAgent }
func (r Role) runsLeader() bool { return r == RoleAll || r == RoleAPI }

// NodeConfig describes the local node for the node agent.
type NodeConfig struct {
	// ID names the node; empty means the hostname. It must stay the same
	// across restarts so that the runs of a crashed agent are recovered.
	ID string
	// GPUs are the node's accelerators (discovery.ParseDeclaredGPUs or
	// discovery.DetectGPUs).
	GPUs []scheduler.Device
	// MilliCPU and MemoryBytes are what runs may use; zero means the whole
	// machine (discovery.LocalNode).
	MilliCPU    int64
	MemoryBytes int64
	Labels      map[string]string
}

// Config configures a Dispatcher. Store and Registry are required; every
// other field has a default.
type Config struct {
	Store    store.Store
	Registry *tasks.Registry
	// Logger receives the dispatcher's own logs; nil means slog.Default.
	Logger *slog.Logger
	Role   Role
	Node   NodeConfig
	// Clock is the time source for run timestamps and deadlines; nil means
	// time.Now. Timers still run on real time.
	Clock func() time.Time

	// HeartbeatInterval is how often a node agent reports alive (default
	// 1s); HeartbeatTimeout how long a silent node keeps its runs before
	// they are requeued (default 10s).
	HeartbeatInterval, HeartbeatTimeout time.Duration
	// LeaseTTL is how long the scheduler lease lasts without renewal
	// (default 5s); it is renewed every LeaseTTL/3, so another process takes
	// over within about LeaseTTL of the holder's death.
	LeaseTTL time.Duration
	// AbortGrace is how long a cancelled (aborted, timed out) function may
	// take to return before its run is marked anyway (default 10s).
	AbortGrace time.Duration
	// Retention is how long terminal runs keep their inputs, outputs and
	// logs (default 7 days; negative keeps them forever).
	Retention time.Duration
	// DeleteAfter is how long terminal runs are kept at all: older ones
	// are deleted with their attempts, events, deliveries and idempotency
	// keys, and read as not found (default 0: kept forever).
	DeleteAfter time.Duration
	// MaxOutputBytes caps a run's encoded outputs (default 1 MiB); larger
	// outputs fail the run with an error that says so.
	MaxOutputBytes int
	// Quotas caps the GPUs each project's runs may hold at once.
	Quotas map[string]int
	// Strategy is the scheduler's placement strategy.
	Strategy scheduler.Strategy
	// MaxInterruptions is how many times a run may be interrupted by the
	// platform (its node restarted, stopped heartbeating or was drained)
	// and go back to the queue; the next interruption fails it. It applies
	// to tasks whose Options.MaxInterruptions is zero (default 10;
	// negative: none, the first interruption fails the run).
	// Interruptions never spend a task's retry policy.
	MaxInterruptions int
	// DrainTimeout is how long Drain and Close let running attempts finish
	// before cancelling them and requeueing them as interruptions (default
	// 30s; negative: cancel them at once).
	DrainTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultHeartbeatInterval = time.Second
	DefaultHeartbeatTimeout  = 10 * time.Second
	DefaultLeaseTTL          = 5 * time.Second
	DefaultAbortGrace        = 10 * time.Second
	DefaultRetention         = 7 * 24 * time.Hour
	DefaultMaxOutputBytes    = 1 << 20
	DefaultMaxInterruptions  = 10
	DefaultDrainTimeout      = 30 * time.Second
)

func (c *Config) validate() error {
	if c.Store == nil {
		return errors.New("dispatch: Config.Store is required")
	}
	if c.Registry == nil {
		return errors.New("dispatch: Config.Registry is required")
	}
	if c.Role < RoleAll || c.Role > RoleAgent {
		return fmt.Errorf("dispatch: Config.Role: unknown %v", c.Role)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Node.ID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("dispatch: Config.Node.ID is empty and the hostname is unknown: %w", err)
		}
		if h == "" {
			return errors.New("dispatch: Config.Node.ID is empty and so is the hostname")
		}
		c.Node.ID = h
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"HeartbeatInterval", &c.HeartbeatInterval, DefaultHeartbeatInterval},
		{"HeartbeatTimeout", &c.HeartbeatTimeout, DefaultHeartbeatTimeout},
		{"LeaseTTL", &c.LeaseTTL, DefaultLeaseTTL},
		{"AbortGrace", &c.AbortGrace, DefaultAbortGrace},
	} {
		if *d.v < 0 {
			return fmt.Errorf("dispatch: Config.%s is negative", d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.HeartbeatTimeout <= c.HeartbeatInterval {
		return fmt.Errorf("dispatch: Config.HeartbeatTimeout %s must exceed HeartbeatInterval %s", c.HeartbeatTimeout, c.HeartbeatInterval)
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.DeleteAfter < 0 {
		return fmt.Errorf("dispatch: Config.DeleteAfter %s is negative (0 keeps runs forever)", c.DeleteAfter)
	}
	if c.MaxOutputBytes < 0 {
		return errors.New("dispatch: Config.MaxOutputBytes is negative")
	}
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if c.MaxInterruptions == 0 {
		c.MaxInterruptions = DefaultMaxInterruptions
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	for p, q := range c.Quotas {
		if q < 0 {
			return fmt.Errorf("dispatch: Config.Quotas[%q] is negative", p)
		}
	}
	return nil
}

// Dispatcher accepts runs, stores them durably, schedules them and (with
// a node agent) executes them. See the package documentation.
type Dispatcher struct {
	cfg Config
	st  store.Store
	log *slog.Logger
	now func() time.Time

	// holder names this process in the scheduler lease.
	holder string

	// mu guards closing against Submit sending on submitQ.
	mu      sync.RWMutex
	closing bool
	submitQ chan *submitReq
	transQ  chan *transReq
	writers sync.WaitGroup
	// submitFails logs the store's refusals of submitted runs; callers
	// get each one (503 or 507 over HTTP).
	submitFails *backoff.Failures

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
	d := &Dispatcher{
		cfg:     cfg,
		st:      cfg.Store,
		now:     cfg.Clock,
		holder:  cfg.Node.ID + "/" + randomString(8),
		submitQ: make(chan *submitReq, 4096),
		transQ:  make(chan *transReq, 4096),
	}
	d.log = cfg.Logger.With("component", "dispatch", "instance", d.holder)
	d.submitFails = d.failures("store submitted runs")
	d.bg, d.stopBG = context.WithCancel(context.Background())
	d.logs = newLogWriter(d)
	d.progress = newProgressWriter(d)
	d.subs.init()
	d.subs.read = d.readEvent
	if cfg.Role.runsLeader() {
		l, err := newLeader(d)
		if err != nil {
			return nil, err
		}
		d.leader = l
	}
	if cfg.Role.runsAgent() {
		d.agent = newAgent(d)
	}
	// Two submit writers: one builds its batch while the other commits.
	for range 2 {
		d.writers.Go(d.submitWriter)
	}
	d.writers.Go(d.transitionWriter)
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
		d.leader.running.Store(true)
		d.loops.Go(func() { d.leader.run(d.bg) })
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
	close(d.transQ)
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

// SubmitRequest is one run to submit.
type SubmitRequest struct {
	Task *tasks.Definition
	// Inputs are the JSON inputs, already validated against the schema.
	Inputs json.RawMessage
	// Caller submitted the run; its Subject becomes the run's owner.
	Caller identity.Identity
	// IdempotencyKey, when set, makes a retried request return the run of
	// the first one. Keys are scoped per Caller.Subject.
	IdempotencyKey string
	Priority       int
	// Webhook is the callback URL; WebhookEvents filters callbacks
	// ("start", "completed"; empty means completed).
	Webhook       string
	WebhookEvents []string
}

type submitReq struct {
	run  store.NewRun
	done chan submitRes
}

type submitRes struct {
	res store.CreateResult
	err error
}

// maxSubmitBatch bounds one group commit.
const maxSubmitBatch = 1024

// Submit stores a run durably (committed and fsynced) before returning it.
// A request that repeats an IdempotencyKey of the same caller returns the
// first run with created false, or ErrIdempotencyConflict when the task,
// inputs, priority or callback differ. Text that cannot be stored as it is
// (invalid UTF-8, NUL, lone surrogates in the inputs) is a *TextError.
// Concurrent submits share one transaction (group commit).
func (d *Dispatcher) Submit(ctx context.Context, req SubmitRequest) (*tasks.Run, bool, error) {
	if req.Task == nil {
		return nil, false, errors.New("dispatch: SubmitRequest.Task is nil")
	}
	if req.Caller.Subject == "" {
		return nil, false, errors.New("dispatch: SubmitRequest.Caller has no subject")
	}
	inputs := req.Inputs
	if len(inputs) == 0 {
		inputs = json.RawMessage(`{}`)
	}
	if err := checkText(&req, inputs); err != nil {
		return nil, false, err
	}
	now := d.now()
	nr := store.NewRun{
		Name:    newRunName(),
		Project: req.Task.Project, Domain: req.Task.Domain, Task: req.Task.Name, Version: req.Task.Version,
		Caller:         store.CallerOf(req.Caller),
		Priority:       req.Priority,
		Inputs:         inputs,
		IdempotencyKey: req.IdempotencyKey,
		Webhook:        req.Webhook,
		WebhookEvents:  req.WebhookEvents,
		CreatedAt:      now,
	}
	if req.IdempotencyKey != "" {
		nr.RequestHash = requestHash(req.Task.ID(), inputs, req.Priority, req.Webhook, req.WebhookEvents)
	}
	sr := &submitReq{run: nr, done: make(chan submitRes, 1)}
	d.mu.RLock()
	if d.closing {
		d.mu.RUnlock()
		return nil, false, ErrClosed
	}
	select {
	case d.submitQ <- sr:
	case <-ctx.Done():
		d.mu.RUnlock()
		return nil, false, ctx.Err()
	}
	d.mu.RUnlock()
	// Once queued, the request is committed or refused within one batch;
	// waiting for it regardless of ctx tells the caller the truth.
	r := <-sr.done
	if r.err != nil {
		return nil, false, r.err
	}
	switch {
	case errors.Is(r.res.Err, store.ErrIdempotencyConflict):
		return nil, false, ErrIdempotencyConflict
	case !r.res.Created:
		run, err := d.Get(ctx, r.res.Name)
		return run, false, err
	}
	run := &tasks.Run{
		Name: nr.Name, Project: nr.Project, Domain: nr.Domain, Task: nr.Task, Version: nr.Version,
		Owner: nr.Caller.Subject, Phase: tasks.PhaseQueued, Priority: nr.Priority, Inputs: nr.Inputs,
		Webhook: nr.Webhook, WebhookEvents: nr.WebhookEvents, CreatedAt: now,
	}
	return run, true, nil
}

// requestHash identifies a request for idempotency: SHA-256 over
// everything that defines the run (the task ID, the inputs, the priority,
// the callback URL and its events), so a retry that changes any of them is
// a conflict rather than the first run with the change dropped. Every text
// is free of NUL (checkText), which separates them. A request with the
// default options hashes as before they counted, so a key stored then
// still matches its retry.
func requestHash(taskID string, inputs []byte, priority int, webhook string, events []string) string {
	h := sha256.New()
	h.Write([]byte(taskID))
	h.Write([]byte{0})
	h.Write(inputs)
	if priority != 0 || webhook != "" || len(events) > 0 {
		fmt.Fprintf(h, "\x00priority=%d\x00webhook=%s", priority, webhook)
		for _, e := range events {
			fmt.Fprintf(h, "\x00event=%s", e)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// drain adds to batch what ch holds now, up to limit in all: the requests
// that arrived while the previous group commit was written.
func drain[T any](batch []T, ch <-chan T, limit int) []T {
	for len(batch) < limit {
		select {
		case v, ok := <-ch:
			if !ok {
				return batch
			}
			batch = append(batch, v)
		default:
			return batch
		}
	}
	return batch
}

func (d *Dispatcher) submitWriter() {
	batch := make([]*submitReq, 0, maxSubmitBatch)
	runs := make([]store.NewRun, 0, maxSubmitBatch)
	for first := range d.submitQ {
		batch = drain(append(batch[:0], first), d.submitQ, maxSubmitBatch)
		runs = runs[:0]
		for _, sr := range batch {
			runs = append(runs, sr.run)
		}
		res, errs := d.createRuns(context.Background(), runs)
		// Only a leader or a subscriber in this process wants the runs.
		want := d.leader != nil || d.subs.active()
		var created []*store.StoredRun
		for i, sr := range batch {
			if errs[i] != nil {
				sr.done <- submitRes{err: fmt.Errorf("dispatch: store run: %w", errs[i])}
				continue
			}
			sr.done <- submitRes{res: res[i]}
			if want && res[i].Created {
				created = append(created, storedFromNew(&runs[i], res[i].Seq))
			}
		}
		if len(created) == 0 {
			continue
		}
		if d.leader != nil {
			d.leader.submitted(created)
		}
		if d.subs.active() {
			for _, r := range created {
				d.subs.publish(r.Run, tasks.Event{Seq: 1, Run: r.Name, Phase: tasks.PhaseQueued, At: r.CreatedAt})
			}
		}
	}
}

// createRuns stores runs in one transaction and returns each one's result
// or error. When the store refuses the batch, the runs are stored one by
// one, so one request the store refuses never fails the others committed
// with it (as the transition writer does with changes); not when the store
// itself failed (store.ErrUnavailable), which each run would meet alone.
func (d *Dispatcher) createRuns(ctx context.Context, runs []store.NewRun) ([]store.CreateResult, []error) {
	errs := make([]error, len(runs))
	res, err := d.st.CreateRuns(ctx, runs)
	if err == nil {
		d.submitFails.OK(ctx)
		return res, errs
	}
	if errors.Is(err, store.ErrUnavailable) {
		d.submitFails.Fail(ctx, err, slog.Int("runs", len(runs)))
		for i := range errs {
			errs[i] = err
		}
		return nil, errs
	}
	if len(runs) == 1 {
		errs[0] = err
		return nil, errs
	}
	res = make([]store.CreateResult, len(runs))
	for i := range runs {
		r, err := d.st.CreateRuns(ctx, runs[i:i+1])
		if err != nil {
			errs[i] = err
			continue
		}
		res[i] = r[0]
	}
	return res, errs
}

func storedFromNew(nr *store.NewRun, seq int64) *store.StoredRun {
	return &store.StoredRun{
		Run: tasks.Run{
			Name: nr.Name, Project: nr.Project, Domain: nr.Domain, Task: nr.Task, Version: nr.Version,
			Owner: nr.Caller.Subject, Phase: tasks.PhaseQueued, Priority: nr.Priority, Inputs: nr.Inputs,
			Webhook: nr.Webhook, WebhookEvents: nr.WebhookEvents, CreatedAt: nr.CreatedAt,
		},
		Seq: seq, Caller: nr.Caller, EventSeq: 1,
	}
}

type transReq struct {
	t    store.Transition
	done chan transRes
}

type transRes struct {
	res store.TransitionResult
	err error
}

const maxTransitionBatch = 512

// transition commits t through the transition writer, which groups the
// phase changes of concurrent runs into one transaction.
func (d *Dispatcher) transition(t store.Transition) (store.TransitionResult, error) {
	tr := &transReq{t: t, done: make(chan transRes, 1)}
	d.transQ <- tr
	r := <-tr.done
	return r.res, r.err
}

func (d *Dispatcher) transitionWriter() {
	batch := make([]*transReq, 0, maxTransitionBatch)
	ts := make([]store.Transition, 0, maxTransitionBatch)
	for first := range d.transQ {
		batch = drain(append(batch[:0], first), d.transQ, maxTransitionBatch)
		ts = ts[:0]
		ending := false
		for _, tr := range batch {
			ts = append(ts, tr.t)
			ending = ending || tr.t.To != tasks.PhaseRunning
		}
		if ending {
			// A finished attempt's log lines are stored before its
			// outcome, so whoever sees the outcome sees every line.
			d.logs.flush(context.Background())
			d.progress.flush(context.Background())
		}
		res, err := d.commitTransitions(context.Background(), ts)
		if err != nil && len(batch) > 1 {
			// One change the store refuses must not cost the others
			// their outcome: commit them one by one.
			for _, tr := range batch {
				r, err := d.commitTransitions(context.Background(), []store.Transition{tr.t})
				if err != nil {
					tr.done <- transRes{err: err}
					continue
				}
				tr.done <- transRes{res: r[0]}
			}
			continue
		}
		for i, tr := range batch {
			if err != nil {
				tr.done <- transRes{err: err}
				continue
			}
			tr.done <- transRes{res: res[i]}
		}
	}
}

// failures paces and logs the store errors of one of the dispatcher's
// loops, under msg: a line when it starts failing, one every 30 s while
// it fails, one when it recovers (see internal/backoff).
func (d *Dispatcher) failures(msg string) *backoff.Failures {
	return backoff.New(backoff.Config{Logger: d.log, Msg: msg})
}

// commitTransitions writes ts and tells local subscribers.
func (d *Dispatcher) commitTransitions(ctx context.Context, ts []store.Transition) ([]store.TransitionResult, error) {
	res, err := d.st.Transition(ctx, ts)
	if err != nil {
		return nil, fmt.Errorf("dispatch: record phase: %w", err)
	}
	for _, r := range res {
		for _, ev := range r.Events {
			d.publishLocal(r.Run.Run, ev)
		}
	}
	return res, nil
}

// publishLocal tells subscribers about a change committed by this process.
func (d *Dispatcher) publishLocal(run tasks.Run, ev tasks.Event) {
	if !d.subs.active() {
		return
	}
	d.subs.publish(run, ev)
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
	srs, err := d.st.ListRuns(ctx, store.RunFilter{Owner: o.Owner, Phases: o.Phases, Task: o.Task, BeforeSeq: before, Limit: limit + 1})
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
		d.publishLocal(res.Run.Run, res.Event)
	} else if d.agent != nil && res.Run.Node == d.cfg.Node.ID {
		d.agent.abort(name, res.Run.AbortReason)
	}
	return &res.Run.Run, nil
}

// Events streams a run's events with Seq > afterSeq: the stored ones, then
// live ones as they are committed (by any process). The channel closes after
// the terminal event or when ctx is done.
func (d *Dispatcher) Events(ctx context.Context, name string, afterSeq int64) (<-chan tasks.Event, error) {
	if _, err := d.st.GetRun(ctx, name); err != nil {
		return nil, mapErr(err)
	}
	sig, unwatch := d.watch.add(name)
	ch := make(chan tasks.Event, 16)
	go func() {
		defer close(ch)
		defer unwatch()
		last := afterSeq
		poll := time.NewTicker(watchPoll)
		defer poll.Stop()
		for {
			evs, err := d.st.Events(ctx, name, last)
			if err != nil && ctx.Err() == nil {
				d.log.Warn("read events", "run", name, "err", err)
			}
			for _, ev := range evs {
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
				last = ev.Seq
				if ev.Phase.Terminal() {
					return
				}
			}
			if len(evs) == 0 && err == nil {
				// Resumed after the terminal event: nothing more will come.
				if r, err := d.st.GetRun(ctx, name); err == nil && r.Done() && r.EventSeq <= last {
					return
				}
			}
			select {
			case <-sig:
			case <-poll.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// watchPoll re-reads a watched run in case a notification was lost.
const watchPoll = 5 * time.Second

// Wait returns the run once it is terminal, or when ctx is done (then the
// current run and ctx.Err()).
func (d *Dispatcher) Wait(ctx context.Context, name string) (*tasks.Run, error) {
	sig, unwatch := d.watch.add(name)
	defer unwatch()
	poll := time.NewTicker(watchPoll)
	defer poll.Stop()
	for {
		sr, err := d.st.GetRun(context.WithoutCancel(ctx), name)
		if err != nil {
			return nil, mapErr(err)
		}
		if sr.Done() {
			return &sr.Run, nil
		}
		select {
		case <-sig:
		case <-poll.C:
		case <-ctx.Done():
			return &sr.Run, ctx.Err()
		}
	}
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

// Subscribe calls fn with every phase change, in commit order per run: the
// changes this process commits with the run as the change left it, and,
// where the store is shared (PostgreSQL), other processes' changes with the
// run as read just after. fn runs on one goroutine, behind a queue, so a
// slow fn delays other callbacks but never a commit. Each change of
// another process costs every process with a subscriber two reads of the
// store; SubscribeLocal and OnDelivery need none. The returned func
// unsubscribes.
func (d *Dispatcher) Subscribe(fn func(tasks.Run, tasks.Event)) (unsubscribe func()) {
	return d.subs.add(fn, false)
}

// SubscribeLocal is Subscribe for the changes this process commits only,
// which cost no read: where no subscriber wants other processes' changes,
// this process reads none of them.
func (d *Dispatcher) SubscribeLocal(fn func(tasks.Run, tasks.Event)) (unsubscribe func()) {
	return d.subs.add(fn, true)
}

// OnDelivery calls fn each time a change enqueues a webhook delivery: a
// change this process commits or, where the store is shared (PostgreSQL),
// another process's. Unlike Subscribe it reads nothing from the store, so
// a webhook worker in every API process can use it to look at the outbox
// at once. fn runs on the goroutine that fans out the store's
// notifications and must not block (wake a worker). The returned func
// unsubscribes.
func (d *Dispatcher) OnDelivery(fn func()) (unsubscribe func()) {
	return d.deliveries.add(fn)
}

// runNameAlphabet is base32hex in lowercase: URL-safe, and in ASCII order,
// so names sort by their time prefix.
const runNameAlphabet = "0123456789abcdefghijklmnopqrstuv"

var runNameEncoding = base32.NewEncoding(runNameAlphabet).WithPadding(base32.NoPadding)

// newRunName returns "r", 9 characters of the current Unix millisecond and
// 16 random characters (80 bits): short, URL-safe and unguessable. The time
// prefix makes consecutive runs neighbours in the store's indexes, so a
// group commit of many runs dirties a few pages instead of one per run.
func newRunName() string {
	var b [26]byte
	b[0] = 'r'
	ms := uint64(time.Now().UnixMilli())
	for i := 9; i >= 1; i-- {
		b[i] = runNameAlphabet[ms&31]
		ms >>= 5
	}
	copy(b[10:], randomString(16))
	return string(b[:])
}

func randomString(n int) string {
	b := make([]byte, (n*5+7)/8)
	_, _ = rand.Read(b)
	return runNameEncoding.EncodeToString(b)[:n]
}

// readEvent fetches the run and event of another process's notification.
func (d *Dispatcher) readEvent(n store.Notification) (tasks.Run, tasks.Event, bool) {
	ctx := d.bg
	sr, err := d.st.GetRun(ctx, n.Run)
	if err != nil {
		return tasks.Run{}, tasks.Event{}, false
	}
	evs, err := d.st.Events(ctx, n.Run, n.Seq-1)
	if err != nil || len(evs) == 0 {
		return tasks.Run{}, tasks.Event{}, false
	}
	return sr.Run, evs[0], true
}
