package taskexec_test

import (
	"context"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/taskexec"
)

func TestCommandRestrictsTheSubprocessToTheRunsDevices(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	ctx := tasks.WithRunInfo(context.Background(), tasks.RunInfo{Devices: []tasks.Device{{Index: 2}, {Index: 5}}})
	out, err := taskexec.Command(ctx, "sh", "-c", `printf '%s|%s' "$CUDA_VISIBLE_DEVICES" "$NVIDIA_VISIBLE_DEVICES"`).Output()
	require.NoError(t, err)
	require.Equal(t, "2,5|2,5", string(out))

	none, err := taskexec.Command(context.Background(), "sh", "-c", `printf '[%s]|%s' "$CUDA_VISIBLE_DEVICES" "$NVIDIA_VISIBLE_DEVICES"`).Output()
	require.NoError(t, err)
	require.Equal(t, "[]|void", string(none), "a run without GPUs sees none")
}
