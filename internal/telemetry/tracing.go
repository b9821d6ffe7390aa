package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// NewTracerProvider returns an SDK TracerProvider that exports spans in
// batches as the standard OTEL_* variables say, through autoexport:
// OTEL_TRACES_EXPORTER (otlp, console or none), OTLP over HTTP or gRPC
// (OTEL_EXPORTER_OTLP_PROTOCOL, …_ENDPOINT, …_HEADERS), the sampler
// (OTEL_TRACES_SAMPLER, read by the SDK) and the batch processor's
// OTEL_BSP_* settings. Its resource is service.name=service and
// service.version=version (when not empty), which OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES override. Shut it down to flush the last
// spans.
func NewTracerProvider(ctx context.Context, service, version string) (*sdktrace.TracerProvider, error) {
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("trace exporter: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", service)}
	if version != "" {
		attrs = append(attrs, attribute.String("service.version", version))
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attrs...),
		// Later detectors win: the variables override the defaults above.
		resource.WithFromEnv(),
		resource.WithHost(),
	)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}
