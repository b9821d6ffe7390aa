package callback

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/tasks/store"
)

// Observer hears what the delivery worker does, for metrics: framework
// wires one to Prometheus, so that this package never imports it.
// Methods must return quickly.
type Observer interface {
	// Delivered: one attempt ended with outcome (DeliveryOK,
	// DeliveryRetried, DeliveryGivenUp) after d, the POST's time.
	Delivered(outcome string, d time.Duration)
	// Committed: writer ("outbox") recorded n attempts in one transaction
	// that took d.
	Committed(writer string, n int, d time.Duration)
}

// Outcomes of a delivery attempt, as Observer.Delivered hears them.
const (
	DeliveryOK      = "delivered"
	DeliveryRetried = "retried"
	DeliveryGivenUp = "failed"
)

type nopObserver struct{}

func (nopObserver) Delivered(string, time.Duration)      {}
func (nopObserver) Committed(string, int, time.Duration) {}

// deliveryOutcome names what attempt a did to its delivery.
func deliveryOutcome(a store.DeliveryAttempt) string {
	switch {
	case !a.Done:
		return DeliveryRetried
	case a.Error == "" && a.StatusCode >= 200 && a.StatusCode < 300:
		return DeliveryOK
	}
	return DeliveryGivenUp
}

// startSpan starts the span of one attempt of dl, a child of the span its
// run was submitted in.
func (w *Worker) startSpan(ctx context.Context, dl store.Delivery) (context.Context, trace.Span) {
	if dl.TraceParent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": dl.TraceParent})
	}
	return w.tracer.Start(ctx, "webhook "+dl.Event, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("taskgate.run", dl.Run), attribute.String("taskgate.webhook_id", dl.ID)))
}

// traceParent is the traceparent header of a delivery made in ctx: its
// span's when there is one, else the run's (stored) one.
func traceParent(ctx context.Context, stored string) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return stored
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c.Get("traceparent")
}
