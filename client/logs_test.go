package client_test

import (
	"errors"
	"net/http"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
)

// TestLogsFollowsTheDemoTrainingToItsEnd: the demo's train task logs a
// line, has a subprocess print one and reports progress per epoch; Logs
// with Follow yields them in order and ends with the run.
func TestLogsFollowsTheDemoTrainingToItsEnd(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	base := serve(t)
	ctx := testContext(t)
	c := newClient(t, base, aliceToken)
	sub, err := client.Start(ctx, c, demo.Train, demo.TrainInput{Epochs: 3, Seconds: 0.6}, nil)
	require.NoError(t, err)

	var got []string
	for l, err := range c.Logs(ctx, sub.Name, &client.LogsOptions{Follow: true}) {
		require.NoError(t, err)
		got = append(got, l.Stream+": "+l.Message)
	}
	require.Equal(t, []string{
		"log: epoch done", "stdout: epoch 1 on GPU 0",
		"log: epoch done", "stdout: epoch 2 on GPU 0",
		"log: epoch done", "stdout: epoch 3 on GPU 0",
	}, got)
	run, err := c.Get(ctx, sub.Name)
	require.NoError(t, err)
	require.True(t, run.Done)
	require.NotNil(t, run.Progress)
	require.Equal(t, 3.0, run.Progress.Done)
	require.Equal(t, "epoch 3", run.Progress.Message)

	var stored []string
	for l, err := range c.Logs(ctx, sub.Name, nil) {
		require.NoError(t, err)
		stored = append(stored, l.Stream+": "+l.Message)
	}
	require.Equal(t, got, stored, "without Follow: the same lines, stored")

	for _, err := range newClient(t, base, bobToken).Logs(ctx, sub.Name, &client.LogsOptions{Follow: true}) {
		var apiErr *client.Error
		require.True(t, errors.As(err, &apiErr), "%v", err)
		require.Equal(t, http.StatusNotFound, apiErr.Status)
	}
}
