package dispatch

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/internal/backoff"
	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

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
	if trace.SpanFromContext(ctx).IsRecording() {
		// The span of the submit, its group commit included: the run's
		// attempts and callbacks are its children (TraceParent).
		var span trace.Span
		ctx, span = d.tracer.Start(ctx, "submit "+req.Task.ID())
		defer span.End()
	}
	nr.TraceParent = traceParent(ctx)
	if req.IdempotencyKey != "" {
		nr.RequestHash = requestHash(req.Task.ID(), inputs, req.Priority, req.Webhook, req.WebhookEvents)
	}
	res, err := d.submits.submit(ctx, nr)
	if err != nil {
		return nil, false, err
	}
	switch {
	case errors.Is(res.Err, store.ErrIdempotencyConflict):
		return nil, false, ErrIdempotencyConflict
	case !res.Created:
		run, err := d.Get(ctx, res.Name)
		return run, false, err
	}
	run := &tasks.Run{
		Name: nr.Name, Project: nr.Project, Domain: nr.Domain, Task: nr.Task, Version: nr.Version,
		Owner: nr.Caller.Subject, Phase: tasks.PhaseQueued, Priority: nr.Priority, Inputs: nr.Inputs,
		Webhook: nr.Webhook, WebhookEvents: nr.WebhookEvents, CreatedAt: res.CreatedAt,
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

// runCreator is what the submit writer needs of the store; store.Store
// satisfies it.
type runCreator interface {
	CreateRuns(ctx context.Context, runs []store.NewRun) ([]store.CreateResult, error)
}

// submitWriter commits submitted runs in groups: each of its goroutines
// (run) takes every request waiting when it starts a transaction.
type submitWriter struct {
	st runCreator
	// fails logs the store's refusals of submitted runs; callers get
	// each one (503 or 507 over HTTP).
	fails *backoff.Failures
	subs  *subscribers
	// submitted hands the runs just committed to this process's leader:
	// the in-process route of "Hand-offs" in doc.go. Nil without a
	// leader here.
	submitted func([]*store.StoredRun)
	obs       Observer
	// tracer records each grouped commit as a span.
	tracer trace.Tracer

	// mu guards closing against submit sending on q.
	mu      sync.RWMutex
	closing bool
	q       chan *submitReq
}

func newSubmitWriter(st runCreator, log *slog.Logger, subs *subscribers, obs Observer, tracer trace.Tracer) *submitWriter {
	return &submitWriter{
		st: st, fails: failures(log, "store submitted runs"), subs: subs, obs: obs, tracer: tracer,
		q: make(chan *submitReq, 4096),
	}
}

// submit queues nr for the next group commit and waits for its result:
// ErrClosed once close was called.
func (w *submitWriter) submit(ctx context.Context, nr store.NewRun) (store.CreateResult, error) {
	sr := &submitReq{run: nr, done: make(chan submitRes, 1)}
	w.mu.RLock()
	if w.closing {
		w.mu.RUnlock()
		return store.CreateResult{}, ErrClosed
	}
	select {
	case w.q <- sr:
	case <-ctx.Done():
		w.mu.RUnlock()
		return store.CreateResult{}, ctx.Err()
	}
	w.mu.RUnlock()
	// Once queued, the request is committed or refused within one batch;
	// waiting for it regardless of ctx tells the caller the truth.
	r := <-sr.done
	return r.res, r.err
}

// close refuses new submits; the writers end once they committed the
// queued ones.
func (w *submitWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closing = true
	close(w.q)
}

func (w *submitWriter) run() {
	batch := make([]*submitReq, 0, maxSubmitBatch)
	runs := make([]store.NewRun, 0, maxSubmitBatch)
	for first := range w.q {
		batch = drain(append(batch[:0], first), w.q, maxSubmitBatch)
		runs = runs[:0]
		for _, sr := range batch {
			runs = append(runs, sr.run)
		}
		start := time.Now()
		res, errs := w.createRuns(context.Background(), runs)
		w.obs.Committed("submit", len(runs), time.Since(start))
		commitSpan(w.tracer, "submit", start, len(runs), errors.Join(errs...))
		// Only a leader or a subscriber in this process wants the runs.
		want := w.submitted != nil || w.subs.active()
		var created []*store.StoredRun
		for i, sr := range batch {
			if errs[i] != nil {
				sr.done <- submitRes{err: fmt.Errorf("dispatch: store run: %w", errs[i])}
				continue
			}
			sr.done <- submitRes{res: res[i]}
			if res[i].Created {
				w.obs.RunSubmitted(runs[i].Project + "/" + runs[i].Domain + "/" + runs[i].Task)
			}
			if want && res[i].Created {
				created = append(created, storedFromNew(&runs[i], res[i]))
			}
		}
		if len(created) == 0 {
			continue
		}
		if w.submitted != nil {
			w.submitted(created)
		}
		if w.subs.active() {
			for _, r := range created {
				w.subs.publish(r.Run, tasks.Event{Seq: 1, Run: r.Name, Phase: tasks.PhaseQueued, At: r.CreatedAt})
			}
		}
	}
}

// createRuns stores runs in one transaction and returns each one's result
// or error. When the store refuses the batch, the runs are stored one by
// one, so one request the store refuses never fails the others committed
// with it (as the transition writer does with changes); not when the store
// itself failed (store.ErrUnavailable), which each run would meet alone.
func (w *submitWriter) createRuns(ctx context.Context, runs []store.NewRun) ([]store.CreateResult, []error) {
	errs := make([]error, len(runs))
	res, err := w.st.CreateRuns(ctx, runs)
	if err == nil {
		w.fails.OK(ctx)
		return res, errs
	}
	if errors.Is(err, store.ErrUnavailable) {
		w.fails.Fail(ctx, err, slog.Int("runs", len(runs)))
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
		r, err := w.st.CreateRuns(ctx, runs[i:i+1])
		if err != nil {
			errs[i] = err
			continue
		}
		res[i] = r[0]
	}
	return res, errs
}

func storedFromNew(nr *store.NewRun, res store.CreateResult) *store.StoredRun {
	return &store.StoredRun{
		Run: tasks.Run{
			Name: nr.Name, Project: nr.Project, Domain: nr.Domain, Task: nr.Task, Version: nr.Version,
			Owner: nr.Caller.Subject, Phase: tasks.PhaseQueued, Priority: nr.Priority, Inputs: nr.Inputs,
			Webhook: nr.Webhook, WebhookEvents: nr.WebhookEvents, CreatedAt: res.CreatedAt,
		},
		Seq: res.Seq, Caller: nr.Caller, EventSeq: 1, TraceParent: nr.TraceParent,
	}
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
