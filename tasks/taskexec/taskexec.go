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
	// The attempt's trace continues in the subprocess, as the
	// OpenTelemetry environment-variable carriers name it.
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	if tp := c.Get("traceparent"); tp != "" {
		cmd.Env = append(cmd.Env, "TRACEPARENT="+tp)
		if ts := c.Get("tracestate"); ts != "" {
			cmd.Env = append(cmd.Env, "TRACESTATE="+ts)
		}
	}
	return cmd
}
