package taskexec

import (
	"context"
	"os/exec"

	"go.opentelemetry.io/otel/propagation"

	"github.com/taskgate/taskgate/tasks"
)

// Command is exec.CommandContext with CUDA_VISIBLE_DEVICES and
// NVIDIA_VISIBLE_DEVICES set to the run's devices, so a subprocess sees only
// what the scheduler gave the run, and TRACEPARENT (with TRACESTATE) set to
// the attempt's span, so a traced subprocess joins the run's trace.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(cmd.Environ(), tasks.DeviceEnv(tasks.Devices(ctx))...)
	cmd.Env = append(cmd.Env, traceEnv(ctx)...)
	return cmd
}

// traceEnv is TRACEPARENT (and TRACESTATE) of ctx's span, as the
// OpenTelemetry environment-variable carriers name them, so that the
// attempt's trace continues in a subprocess; none without a span.
func traceEnv(ctx context.Context) []string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	tp := c.Get("traceparent")
	if tp == "" {
		return nil
	}
	env := []string{"TRACEPARENT=" + tp}
	if ts := c.Get("tracestate"); ts != "" {
		env = append(env, "TRACESTATE="+ts)
	}
	return env
}
