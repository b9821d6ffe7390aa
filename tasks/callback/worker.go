package callback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskgate/taskgate/internal/backoff"
	"github.com/taskgate/taskgate/tasks/store"
)

// Outbox is the part of the store the worker needs: store.Store satisfies
// it. Deliveries are enqueued by the store itself, in the transaction of the
// phase change that causes them, or with store.Store.EnqueueDelivery.
type Outbox interface {
	// ClaimDueDeliveries returns pending deliveries due at now and hides
	// them from other workers for store.ClaimTTL.
	ClaimDueDeliveries(ctx context.Context, now time.Time, limit int) ([]store.Delivery, error)
	// RecordDeliveryAttempt stores one attempt and the delivery's new state
	// (done, or due again at a.NextAttemptAt). The attempts are what
	// store.Store.ListDeliveries shows on the run.
	RecordDeliveryAttempt(ctx context.Context, id string, a store.DeliveryAttempt) error
	// ListDeliveries returns a run's deliveries with their attempts. The
	// worker reads it after a failed attempt to learn how many attempts a
	// delivery has had, which picks the step of the retry plan.
	ListDeliveries(ctx context.Context, run string) ([]store.Delivery, error)
}

var _ Outbox = store.Store(nil)

// WorkerConfig configures a Worker. The zero value is the production
// default.
type WorkerConfig struct {
	// Schedule is the retry plan: Schedule[n-1] is the delay after the
	// n-th failed attempt. Nil means DefaultSchedule. After
	// len(Schedule)+1 failed attempts the delivery fails.
	Schedule []time.Duration
	// Jitter is the share of a step added at random to each retry, in
	// [0, 1]. Zero means DefaultJitter; negative means none.
	Jitter float64
	// MaxRetryAfter caps a receiver's Retry-After; zero means
	// DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// Concurrency is how many callbacks are in flight at once; zero means 8.
	// A delivery is claimed only when a slot is free for it, so each one
	// starts at once and ends (within the client's timeout) long before
	// its claim expires.
	Concurrency int
	// PollInterval is how often the outbox is polled when Notify is not
	// called; zero means one second. After a claim the store refuses, the
	// next waits PollInterval doubled per refusal, up to MaxStoreBackoff.
	PollInterval time.Duration
	// Logger receives a line per failed attempt and per given-up delivery;
	// URLs are logged without path or query, which may carry tokens.
	// Failures of the store are logged once per change of state (the
	// first, every 30 s while they last, the recovery). Nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand returns numbers in [0, 1) for jitter; nil means math/rand/v2.
	Rand func() float64
	// Observer hears of each attempt and its record, for metrics; nil
	// hears nothing.
	Observer Observer
	// TracerProvider makes a span per attempt, a child of the span the
	// run was submitted in, whose traceparent the receiver gets; nil
	// makes none (the receiver still gets the run's traceparent).
	TracerProvider trace.TracerProvider
}

func (c *WorkerConfig) validate() (plan, error) {
	if c.Schedule == nil {
		c.Schedule = DefaultSchedule
	}
	switch {
	case c.Jitter == 0:
		c.Jitter = DefaultJitter
	case c.Jitter < 0:
		c.Jitter = 0
	}
	if c.MaxRetryAfter < 0 || c.Concurrency < 0 || c.PollInterval < 0 {
		return plan{}, errors.New("callback: WorkerConfig durations and Concurrency must not be negative")
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	p := plan{schedule: append([]time.Duration(nil), c.Schedule...), jitter: c.Jitter, maxRetryAfter: c.MaxRetryAfter, rand: c.Rand}
	return p, p.validate()
}

// Worker drains the outbox: it claims due deliveries, makes one attempt each
// with a Deliverer, and records the outcome, retrying on the plan until a
// 2xx, a 410 Gone, a permanent failure, or the end of the plan. Delivery is
// at least once: a worker that dies between the POST and the record sends
// the callback again after store.ClaimTTL, with the same webhook-id.
type Worker struct {
	d      *Deliverer
	outbox Outbox
	cfg    WorkerConfig
	plan   plan
	wake   chan struct{}
	tracer trace.Tracer
	// fails pace and log the store's refusals of the worker's claims,
	// records of attempts, and reads of attempt counts.
	fails struct{ claim, record, count *backoff.Failures }
}

// MaxStoreBackoff caps the wait between claims while the store refuses
// them (a full disk, a lost database).
const MaxStoreBackoff = 10 * time.Second

// NewWorker returns a worker that delivers the outbox's callbacks with d.
func NewWorker(d *Deliverer, outbox Outbox, cfg WorkerConfig) (*Worker, error) {
	if d == nil || outbox == nil {
		return nil, errors.New("callback: NewWorker needs a Deliverer and an Outbox")
	}
	p, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	w := &Worker{d: d, outbox: outbox, cfg: cfg, plan: p, wake: make(chan struct{}, 1),
		tracer: cfg.TracerProvider.Tracer("github.com/taskgate/taskgate/tasks/callback")}
	w.fails.claim = backoff.New(backoff.Config{Logger: cfg.Logger, Msg: "webhook outbox claim",
		Min: cfg.PollInterval, Max: max(MaxStoreBackoff, cfg.PollInterval), Rand: cfg.Rand})
	w.fails.record = backoff.New(backoff.Config{Logger: cfg.Logger, Msg: "webhook record attempt"})
	w.fails.count = backoff.New(backoff.Config{Logger: cfg.Logger, Msg: "webhook attempt count"})
	return w, nil
}

// Notify wakes the worker to look for due deliveries now rather than at the
// next poll: call it after enqueueing one (or on a store notification of a
// run event). It never blocks.
func (w *Worker) Notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers callbacks until ctx is done. Attempts in flight then finish
// (each is bounded by the client's timeout) and are recorded before Run
// returns, so a graceful stop loses nothing; deliveries claimed but not yet
// started are left to be claimed again after store.ClaimTTL. It returns nil
// on shutdown.
//
// A pool of Concurrency goroutines makes the attempts. The claimer takes
// Concurrency deliveries per claim (one transaction for many) and hands
// them over one at a time as goroutines free up, so a claimed delivery waits
// at most about one attempt's timeout before it starts, far less than its
// claim lasts.
func (w *Worker) Run(ctx context.Context) error {
	jobs := make(chan store.Delivery)
	// In-flight attempts outlive ctx: cutting a POST short would only make
	// the receiver see it again after the claim expires.
	attemptCtx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for range w.cfg.Concurrency {
		wg.Go(func() {
			for dl := range jobs {
				w.attempt(attemptCtx, dl)
			}
		})
	}
	defer wg.Wait()
	defer close(jobs) // runs before wg.Wait: the pool drains and exits

	timer := time.NewTimer(w.cfg.PollInterval)
	defer timer.Stop()
	for {
		ds, err := w.outbox.ClaimDueDeliveries(ctx, w.cfg.Now(), w.cfg.Concurrency)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// Wakes are ignored meanwhile: they say a delivery is due,
			// not that the store is back.
			if !backoff.Sleep(ctx, w.fails.claim.Fail(ctx, err)) {
				return nil
			}
			continue
		}
		w.fails.claim.OK(ctx)
		for _, dl := range ds {
			select {
			case jobs <- dl:
			case <-ctx.Done():
				return nil
			}
		}
		if len(ds) == w.cfg.Concurrency {
			continue // a full batch: more may be due
		}
		timer.Reset(w.cfg.PollInterval)
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		case <-timer.C:
		}
	}
}

// DeliverDue makes one pass: it claims every delivery due now, in batches
// of Concurrency, attempts each once and records the outcomes, until a
// claim finds none (a delivery whose run's previous one was settled in the
// pass is due in it too). It returns the number of attempts made. Run calls
// the same machinery in a loop; DeliverDue is for tools and tests that want
// one synchronous pass.
func (w *Worker) DeliverDue(ctx context.Context) (int, error) {
	total := 0
	for {
		ds, err := w.outbox.ClaimDueDeliveries(ctx, w.cfg.Now(), w.cfg.Concurrency)
		if err != nil {
			return total, err
		}
		var wg sync.WaitGroup
		for _, dl := range ds {
			wg.Go(func() { w.attempt(ctx, dl) })
		}
		wg.Wait()
		total += len(ds)
		if len(ds) == 0 {
			return total, nil
		}
	}
}

// recordTimeout bounds the write of one attempt's outcome.
const recordTimeout = 10 * time.Second

// attempt makes one delivery attempt of dl and records it.
func (w *Worker) attempt(ctx context.Context, dl store.Delivery) {
	rec, took := w.outcome(ctx, dl)
	w.cfg.Observer.Delivered(deliveryOutcome(rec), took)
	rctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	start := time.Now()
	err := w.outbox.RecordDeliveryAttempt(rctx, dl.ID, rec)
	if err == nil {
		w.cfg.Observer.Committed("outbox", 1, time.Since(start))
	}
	// On error the claim expires and the callback is sent again: at least
	// once.
	w.fails.record.Report(ctx, err, slog.String("webhook_id", dl.ID))
	if err == nil && rec.Done {
		w.Notify() // the run's next delivery may go now
	}
}

// outcome sends dl once and decides what happens next; took is the
// POST's time.
func (w *Worker) outcome(ctx context.Context, dl store.Delivery) (store.DeliveryAttempt, time.Duration) {
	body, err := EncodeSequencedPayload(PayloadType(dl.Event), dl.Seq, dl.CreatedAt, dl.Payload)
	if err != nil {
		w.log(ctx, slog.LevelError, "webhook given up", dl, 0, err)
		return store.DeliveryAttempt{At: w.cfg.Now(), Error: err.Error(), Done: true}, 0
	}
	ctx, span := w.startSpan(ctx, dl)
	defer span.End()
	res := w.d.Deliver(ctx, Message{ID: dl.ID, URL: dl.URL, Body: body, TraceParent: traceParent(ctx, dl.TraceParent)})
	if res.Err != nil {
		span.SetStatus(codes.Error, "not delivered")
	}
	span.SetAttributes(attribute.Int("http.response.status_code", res.StatusCode))
	a := store.DeliveryAttempt{At: res.At, StatusCode: res.StatusCode}
	if res.Delivered() {
		a.Done = true
		return a, res.Duration
	}
	a.Error = res.Err.Error()
	if res.Permanent {
		a.Done = true
		w.log(ctx, slog.LevelWarn, "webhook given up", dl, res.StatusCode, res.Err)
		return a, res.Duration
	}
	n := w.attemptNumber(ctx, dl)
	next, ok := w.plan.next(n, w.cfg.Now(), res.RetryAfter)
	if !ok {
		a.Done = true
		a.Error = fmt.Sprintf("%s; giving up after %d attempts", a.Error, n)
		w.log(ctx, slog.LevelWarn, "webhook given up", dl, res.StatusCode, res.Err)
		return a, res.Duration
	}
	a.NextAttemptAt = next
	w.log(ctx, slog.LevelInfo, "webhook attempt failed", dl, res.StatusCode, res.Err, slog.Time("next_attempt_at", next))
	return a, res.Duration
}

// attemptNumber is the number of the attempt just made: one more than the
// outbox recorded. The claim does not carry the count, so it is read back
// here, on the failure path only. When it cannot be read the attempt counts
// as the first, which retries sooner rather than giving up early.
func (w *Worker) attemptNumber(ctx context.Context, dl store.Delivery) int {
	// Bounded like the record: the attempt runs without the worker's
	// cancellation, and a read that hung would hold it past its claim.
	lctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	ds, err := w.outbox.ListDeliveries(lctx, dl.Run)
	w.fails.count.Report(ctx, err, slog.String("webhook_id", dl.ID))
	if err != nil {
		return 1
	}
	for _, d := range ds {
		if d.ID == dl.ID {
			return len(d.Attempts) + 1
		}
	}
	return 1
}

func (w *Worker) log(ctx context.Context, level slog.Level, msg string, dl store.Delivery, status int, err error, extra ...slog.Attr) {
	attrs := append([]slog.Attr{
		slog.String("webhook_id", dl.ID),
		slog.String("run", dl.Run),
		slog.String("host", urlHost(dl.URL)),
		slog.Int("status", status),
		slog.String("error", err.Error()),
	}, extra...)
	w.cfg.Logger.LogAttrs(ctx, level, msg, attrs...)
}

// urlHost is the part of a callback URL that is safe to log.
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
