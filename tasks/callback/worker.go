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
	// RecordDeliveries stores attempts, each with its delivery's new state
	// (done, or due again at NextAttemptAt), and postponements, then
	// claims up to next.Limit deliveries due at next.Now, hiding them from
	// other workers for store.ClaimTTL: all in one transaction. The
	// attempts are what store.Store.ListDeliveries shows on the run.
	RecordDeliveries(ctx context.Context, rs []store.DeliveryRecord, next store.DeliveryClaim) ([]store.Delivery, error)
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
	// Concurrency is how many callbacks are in flight at once; zero means
	// 64. Claims take deliveries for the slots free, and as many again to
	// wait for one, in one transaction.
	Concurrency int
	// PerHost is how many callbacks may be in flight to one receiver (a
	// URL's host and port) at once; zero means 16, within the client's
	// idle connections per host (so each is a kept-alive connection). So
	// a slow receiver holds at most PerHost slots and the others'
	// callbacks keep flowing: a delivery claimed for a receiver that has
	// PerHost in flight and its waiting room full is given back to the
	// outbox, due when the receiver should have room. The waiting room
	// holds what the receiver works through in about a second at its
	// pace, at least 2*PerHost (up to 1024), so that one claim feeds a
	// fast receiver for several transactions: claimed deliveries wait at
	// most about a second or two attempts' time (two client timeouts),
	// far less than their claim lasts. The limit is per worker: each
	// process sharing a PostgreSQL outbox has its own.
	PerHost int
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
	if c.MaxRetryAfter < 0 || c.Concurrency < 0 || c.PerHost < 0 || c.PollInterval < 0 {
		return plan{}, errors.New("callback: WorkerConfig durations, Concurrency and PerHost must not be negative")
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.PerHost == 0 {
		c.PerHost = 16
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
	// fails pace and log the store's refusals of the worker's claims and
	// records.
	fails struct{ claim, record *backoff.Failures }
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
	w.fails.record = backoff.New(backoff.Config{Logger: cfg.Logger, Msg: "webhook record attempts"})
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
// started are given back, due at once. It returns nil on shutdown.
//
// One loop claims deliveries, many per transaction, and starts each on its
// own goroutine within Concurrency and PerHost (see hosts); the outcomes
// reach the outbox through one group-commit writer (recorder), many per
// transaction too.
func (w *Worker) Run(ctx context.Context) error {
	_, _ = w.loop(ctx, false)
	return nil
}

// DeliverDue makes one pass: it claims every delivery due now, attempts
// each once and records the outcomes, until a claim finds none with
// nothing in flight (a delivery whose run's previous one was settled in
// the pass is due in it too). In a pass a receiver's deliveries wait for
// its slots however many there are, rather than being postponed. It
// returns the number of attempts made. Run runs the same loop until
// stopped; DeliverDue is for tools and tests that want one synchronous
// pass.
func (w *Worker) DeliverDue(ctx context.Context) (int, error) {
	return w.loop(ctx, true)
}

// ended is the end of one attempt, as the loop hears it.
type ended struct {
	host string
	took time.Duration
}

// loop is Run (once false) and DeliverDue (once true). It owns hosts and
// never waits on the store: claims go through the recorder, which answers
// on rec.claimed.
func (w *Worker) loop(ctx context.Context, once bool) (int, error) {
	rec := newRecorder(w.outbox, w.cfg.Observer, w.fails.record)
	hs := newHosts(w.cfg.PerHost, w.cfg.Concurrency)
	ends := make(chan ended, w.cfg.Concurrency)
	// In-flight attempts outlive ctx: cutting a POST short would only make
	// the receiver see it again after the claim expires.
	attemptCtx := context.WithoutCancel(ctx)
	attempts := 0
	// recording counts the attempts whose records are not yet durable;
	// their slots may be free already.
	var recording sync.WaitGroup
	start := func(dl store.Delivery) {
		attempts++
		recording.Add(1)
		go func() {
			defer recording.Done()
			w.attempt(attemptCtx, dl, rec, ends, !once)
		}()
	}
	giveBack := func(ds []store.Delivery) {
		for _, dl := range ds {
			rec.postpone(store.DeliveryRecord{ID: dl.ID, Postponed: true, Attempt: store.DeliveryAttempt{NextAttemptAt: w.cfg.Now()}})
		}
	}
	// claiming is the size of the claim outstanding, zero when none.
	// answered: a claim was answered and the recorder waits to hear
	// whether the next rides in its next transaction (recorder.answer).
	claiming, answered := 0, false
	defer func() {
		if claiming > 0 {
			got := <-rec.claimed
			rec.answer(store.DeliveryClaim{})
			giveBack(got.ds)
		} else if answered {
			rec.answer(store.DeliveryClaim{})
		}
		giveBack(hs.drop())
		for hs.inflight > 0 {
			e := <-ends
			hs.finished(e.host, e.took, w.cfg.Now())
		}
		recording.Wait()
		rec.close()
	}()
	// A claim waits until it can take a few deliveries (or the poll
	// comes): it is a write, and one per ended attempt would cost what
	// grouping saves.
	batchMin := w.cfg.PerHost
	ticker := time.NewTicker(w.cfg.PollInterval)
	defer ticker.Stop()
	// claim: something may be due; tick: the poll came (a claim may
	// probe for receivers not seen yet); pause: the store refused the
	// last claim, and the next waits for it to fire; endedSince: an
	// attempt ended while the claim was out (a pass is over only when a
	// claim that saw every record finds nothing).
	claim, tick, endedSince := true, true, false
	var pause <-chan time.Time
	for {
		if budget := hs.budget(tick); claim && claiming == 0 && pause == nil && budget > 0 &&
			(once || tick || budget >= batchMin || hs.inflight+hs.held == 0) {
			c := store.DeliveryClaim{Now: w.cfg.Now(), Limit: budget}
			if answered {
				rec.answer(c)
			} else {
				rec.claim(c)
			}
			claiming, claim, tick, endedSince, answered = budget, false, false, false, false
		} else if answered {
			rec.answer(store.DeliveryClaim{})
			answered = false
		}
		select {
		case <-ctx.Done():
			return attempts, ctx.Err()
		case got := <-rec.claimed:
			asked := claiming
			claiming, answered = 0, true
			if got.err != nil {
				if once {
					return attempts, got.err
				}
				// Wakes are ignored meanwhile: they say a delivery is
				// due, not that the store is back.
				pause = time.After(w.fails.claim.Fail(ctx, got.err))
				continue
			}
			w.fails.claim.OK(ctx)
			now := w.cfg.Now()
			for _, dl := range got.ds {
				ok, until := hs.admit(dl, now, once)
				switch {
				case ok:
					start(dl)
				case !until.IsZero():
					rec.postpone(store.DeliveryRecord{ID: dl.ID, Postponed: true, Attempt: store.DeliveryAttempt{NextAttemptAt: until}})
				}
			}
			claim = claim || len(got.ds) == asked // a full batch: more may be due
			if once && len(got.ds) == 0 && !endedSince && hs.inflight+hs.held == 0 {
				return attempts, nil
			}
		case e := <-ends:
			hs.finished(e.host, e.took, w.cfg.Now())
			for dl, ok := hs.next(e.host); ok; dl, ok = hs.next(e.host) {
				start(dl)
			}
			claim, endedSince = true, true // room, and the run's next delivery may be due
		case <-pause:
			pause, claim = nil, true
		case <-w.wake:
			claim = true
		case <-ticker.C:
			claim, tick = true, true
			hs.forget(w.cfg.Now())
		}
	}
}

// attempt makes one delivery attempt of dl, records it with rec, and
// tells the loop on ends that its slot is free: as soon as the receiver
// has answered when early, else once the record is durable (a pass then
// claims after the records of its attempts, and sees the runs' next
// deliveries due). The record is durable when attempt returns.
func (w *Worker) attempt(ctx context.Context, dl store.Delivery, rec *recorder, ends chan<- ended, early bool) {
	a, took := w.outcome(ctx, dl)
	w.cfg.Observer.Delivered(deliveryOutcome(a), took)
	end := ended{host: hostKey(dl.URL), took: took}
	if early {
		ends <- end
	}
	// On error the claim expires and the callback is sent again: at least
	// once. The recorder logs it.
	_ = rec.record(store.DeliveryRecord{ID: dl.ID, Attempt: a})
	if !early {
		ends <- end
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
	n := dl.AttemptsMade + 1
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
