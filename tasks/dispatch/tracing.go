package dispatch

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// tracerName is the instrumentation scope of the dispatcher's spans.
const tracerName = "github.com/taskgate/taskgate/tasks/dispatch"

// The trace of a run crosses processes and restarts through the store:
// Submit keeps the W3C traceparent of its caller's span with the run
// (store.NewRun.TraceParent), and each attempt, wherever it runs, starts
// its span as a child of it. Only the trace context is kept; baggage is
// not.

func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(tracerName)
}

// traceParent is the W3C traceparent of ctx's span, or "" when ctx has
// none (an untraced submit costs nothing).
func traceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c.Get("traceparent")
}

// withTraceParent returns ctx with the remote span context tp names;
// ctx itself when tp is empty or invalid.
func withTraceParent(ctx context.Context, tp string) context.Context {
	if tp == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
}

// startAttempt starts the span of r's attempt, a child of the run's
// submit. The task function's ctx carries it, so a task's own spans and
// its subprocesses (taskexec.Command's TRACEPARENT) join the trace.
func startAttempt(ctx context.Context, tr trace.Tracer, r *store.StoredRun, node string) (context.Context, trace.Span) {
	ctx = withTraceParent(ctx, r.TraceParent)
	return tr.Start(ctx, "attempt "+taskID(&r.Run), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("taskgate.run", r.Name),
			attribute.Int("taskgate.attempt", r.Attempt),
			attribute.String("taskgate.node", node),
		))
}

// endAttempt ends the attempt's span with its outcome.
func endAttempt(span trace.Span, to tasks.Phase, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetAttributes(attribute.String("taskgate.phase", string(to)))
	if err != nil {
		span.RecordError(err)
	}
	if to == tasks.PhaseFailed || to == tasks.PhaseTimedOut {
		span.SetStatus(codes.Error, string(to))
	}
	span.End()
}

// roundSpan records a scheduling round that bound n runs, begun at
// start, as a span of its own: a round that binds nothing records none,
// so an idle scheduler makes no spans.
func roundSpan(tr trace.Tracer, start time.Time, n int) {
	if n == 0 {
		return
	}
	_, span := tr.Start(context.Background(), "schedule round", trace.WithTimestamp(start),
		trace.WithAttributes(attribute.Int("taskgate.bound", n)))
	span.End()
}

// commitSpan records one grouped commit of writer (submit, transitions),
// begun at start, that wrote n changes, as a span of its own: a batch
// holds the changes of many requests, so it is no request's child.
func commitSpan(tr trace.Tracer, writer string, start time.Time, n int, err error) {
	_, span := tr.Start(context.Background(), "store commit "+writer, trace.WithTimestamp(start),
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.Int("taskgate.batch", n)))
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, "commit refused")
	}
	span.End()
}
