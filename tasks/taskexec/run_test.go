package taskexec_test

import (
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/taskexec"
)

// lineRecorder is a slog.Handler that keeps "stream: message" per record.
type lineRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *lineRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *lineRecorder) Handle(_ context.Context, rec slog.Record) error {
	stream := ""
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "stream" {
			stream = a.Value.String()
		}
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, stream+": "+rec.Message)
	r.mu.Unlock()
	return nil
}
func (r *lineRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *lineRecorder) WithGroup(string) slog.Handler      { return r }

func TestRunKeepsTheOutputInTheRunsLogs(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	rec := &lineRecorder{}
	ctx := tasks.WithRunInfo(context.Background(), tasks.RunInfo{Logger: slog.New(rec)})
	err := taskexec.Run(ctx, taskexec.Command(ctx, "sh", "-c",
		`echo one; echo two >&2; head -c 20000 /dev/zero | tr '\0' x; echo; printf 'no newline'`))
	require.NoError(t, err)
	require.Contains(t, rec.lines, "stdout: one")
	require.Contains(t, rec.lines, "stderr: two")
	require.Contains(t, rec.lines, "stdout: "+strings.Repeat("x", 16<<10)+" …[line cut: 3616 more bytes]")
	var stdout []string
	for _, l := range rec.lines {
		if strings.HasPrefix(l, "stdout: ") {
			stdout = append(stdout, l)
		}
	}
	require.Equal(t, "stdout: no newline", stdout[len(stdout)-1], "the last, unfinished line is kept")

	var kept strings.Builder
	cmd := taskexec.Command(ctx, "sh", "-c", "echo mine")
	cmd.Stdout = &kept
	require.NoError(t, taskexec.Run(ctx, cmd))
	require.Equal(t, "mine\n", kept.String(), "a Stdout of the caller's is kept")

	var exit *exec.ExitError
	require.ErrorAs(t, taskexec.Run(ctx, taskexec.Command(ctx, "sh", "-c", "exit 4")), &exit)
	require.Equal(t, 4, exit.ExitCode())
}
