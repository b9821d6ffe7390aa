package taskexec

import (
	"context"
	"os/exec"

	"github.com/taskgate/taskgate/tasks"
)

// Command is exec.CommandContext with CUDA_VISIBLE_DEVICES and
// NVIDIA_VISIBLE_DEVICES set to the run's devices, so a subprocess sees only
// what the scheduler gave the run.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(cmd.Environ(), tasks.DeviceEnv(tasks.Devices(ctx))...)
	return cmd
}
