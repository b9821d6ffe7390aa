package taskexec_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/discovery"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
	"github.com/taskgate/taskgate/tasks/taskexec"
)

// These tests run command tasks the way a service does: submitted to a
// dispatcher over a SQLite file, on a node with a declared A100.

var fastRetry = &tasks.RetryPolicy{MaxAttempts: 3, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Multiplier: 2}

func startDispatcher(t *testing.T, defs ...tasks.Definer) *dispatch.Dispatcher {
	t.Helper()
	st, err := sqlite.OpenDir(context.Background(), t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	gpus, err := discovery.ParseDeclaredGPUs("A100:1")
	require.NoError(t, err)
	reg := tasks.NewRegistry()
	reg.MustRegister(defs...)
	d, err := dispatch.New(dispatch.Config{
		Store: st, Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Node:              dispatch.NodeConfig{ID: "node-1", GPUs: gpus, MilliCPU: 64000, MemoryBytes: 64 << 30},
		HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 3 * time.Second,
		LeaseTTL: 600 * time.Millisecond,
		// Longer than the tasks' grace periods: the run ends when the
		// program is gone, not when the dispatcher stops waiting for it.
		AbortGrace: 10 * time.Second,
	})
	require.NoError(t, err)
	require.NoError(t, d.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d
}

func submitRun(t *testing.T, d *dispatch.Dispatcher, task tasks.Definer, inputs string) string {
	t.Helper()
	run, _, err := d.Submit(context.Background(), dispatch.SubmitRequest{
		Task: task.Definition(), Inputs: json.RawMessage(inputs), Caller: identity.Identity{Subject: "alice"},
	})
	require.NoError(t, err)
	return run.Name
}

func waitRun(t *testing.T, d *dispatch.Dispatcher, name string) *tasks.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, err := d.Wait(ctx, name)
	require.NoError(t, err)
	return run
}

// streamLines are the stored lines of a run that came from stream (the
// line's Stream, no longer among its attributes), in order.
func streamLines(t *testing.T, d *dispatch.Dispatcher, run, stream string) []string {
	t.Helper()
	logs, err := d.Logs(context.Background(), run)
	require.NoError(t, err)
	var lines []string
	for _, l := range logs {
		if l.Stream == stream {
			lines = append(lines, l.Message)
		}
	}
	return lines
}

type devicesOut struct {
	CUDA string `json:"cuda"`
}

func TestCommandTaskRunsWithItsDevicesAndLogs(t *testing.T) {
	t.Parallel()
	needSh(t)
	task := taskexec.MustDefineCommand[struct{}, devicesOut]("demo", "development", "logs", script(t, `
for i in 1 2 3 4 5; do echo "out $i"; echo "err $i" >&2; done
printf 'crlf\r\n\n\n'
head -c 20000 /dev/zero | tr '\0' x; echo
printf 'no newline at the end' >&2
printf '{"cuda":"%s"}' "$CUDA_VISIBLE_DEVICES" > "$TASKGATE_OUTPUTS"
`), &taskexec.Options{Options: tasks.Options{Resources: tasks.Resources{GPU: "A100:1"}, Retry: &tasks.NoRetry}})
	d := startDispatcher(t, task)

	name := submitRun(t, d, task, `{}`)
	run := waitRun(t, d, name)
	require.Equal(t, tasks.PhaseSucceeded, run.Phase, run.Error)
	require.JSONEq(t, `{"cuda":"0"}`, string(run.Outputs), "the program sees the GPU the scheduler gave the run")

	out := streamLines(t, d, name, "stdout")
	require.Len(t, out, 7)
	require.Equal(t, []string{"out 1", "out 2", "out 3", "out 4", "out 5", "crlf"}, out[:6])
	require.Equal(t, strings.Repeat("x", 16<<10)+" …[line cut: 3616 more bytes]", out[6])
	require.Equal(t, []string{"err 1", "err 2", "err 3", "err 4", "err 5", "no newline at the end"}, streamLines(t, d, name, "stderr"))
}

func TestCommandTaskExitCodesAgainstTheRetryPolicy(t *testing.T) {
	t.Parallel()
	needSh(t)
	permanent := taskexec.MustDefineCommand[struct{}, struct{}]("demo", "development", "permanent",
		script(t, `echo "no GPU visible" >&2; exit 3`), &taskexec.Options{Options: tasks.Options{Retry: fastRetry}})
	failing := taskexec.MustDefineCommand[struct{}, struct{}]("demo", "development", "failing",
		script(t, `echo "boom on attempt $TASKGATE_ATTEMPT" >&2; exit 7`), &taskexec.Options{Options: tasks.Options{Retry: fastRetry}})
	flaky := taskexec.MustDefineCommand[struct{}, struct{}]("demo", "development", "flaky",
		script(t, `[ "$TASKGATE_ATTEMPT" -ge 2 ] || exit 1`), &taskexec.Options{Options: tasks.Options{Retry: fastRetry}})
	d := startDispatcher(t, permanent, failing, flaky)

	run := waitRun(t, d, submitRun(t, d, permanent, `{}`))
	require.Equal(t, tasks.PhaseFailed, run.Phase)
	require.Len(t, run.Attempts, 1, "exit code 3: no retry")
	require.Contains(t, run.Error, "exit status 3 (do not retry)")
	require.Contains(t, run.Error, "no GPU visible")

	run = waitRun(t, d, submitRun(t, d, failing, `{}`))
	require.Equal(t, tasks.PhaseFailed, run.Phase)
	require.Len(t, run.Attempts, 3, "another code: retried per the policy")
	require.Contains(t, run.Error, "exit status 7")
	require.Contains(t, run.Error, "boom on attempt 3")

	run = waitRun(t, d, submitRun(t, d, flaky, `{}`))
	require.Equal(t, tasks.PhaseSucceeded, run.Phase)
	require.Len(t, run.Attempts, 2)
}

// groupScript writes its pid (its process group, as the leader) to
// $PIDFILE, starts a child that sleeps, and sleeps. trap is the shell's
// handling of SIGTERM: "”" ignores it, in the shell and in its children
// (which inherit the ignored signal), so that only SIGKILL ends them.
func groupScript(t *testing.T, trap string) []string {
	if trap != "" {
		trap = "trap " + trap + " TERM\n"
	}
	return script(t, trap+`echo $$ > "$PIDFILE.tmp" && mv "$PIDFILE.tmp" "$PIDFILE"
sleep 1000 &
sleep 1000 &
wait
`)
}

func TestCommandTaskAbortAndTimeoutKillTheProcessGroup(t *testing.T) {
	t.Parallel()
	needSh(t)
	if runtime.GOOS != "linux" {
		t.Skip("reads the process table in /proc")
	}
	const cleanUp = `'echo "SIGTERM: cleaning up" >&2; exit 143'`
	tests := map[string]struct {
		trap    string
		timeout time.Duration
		phase   tasks.Phase
		stderr  []string
	}{
		"abort":                        {phase: tasks.PhaseAborted},
		"abort, SIGTERM handled":       {trap: cleanUp, phase: tasks.PhaseAborted, stderr: []string{"SIGTERM: cleaning up"}},
		"abort, SIGTERM ignored":       {trap: "''", phase: tasks.PhaseAborted},
		"timeout":                      {timeout: 300 * time.Millisecond, phase: tasks.PhaseTimedOut},
		"timeout, SIGTERM handled":     {trap: cleanUp, timeout: 300 * time.Millisecond, phase: tasks.PhaseTimedOut, stderr: []string{"SIGTERM: cleaning up"}},
		"timeout, SIGTERM ignored":     {trap: "''", timeout: 300 * time.Millisecond, phase: tasks.PhaseTimedOut},
		"exit leaves a child sleeping": {phase: tasks.PhaseSucceeded},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "pid")
			argv := groupScript(t, tt.trap)
			if tt.phase == tasks.PhaseSucceeded {
				argv = script(t, `echo $$ > "$PIDFILE"; sleep 1000 & echo '{}' > "$TASKGATE_OUTPUTS"`)
			}
			task := taskexec.MustDefineCommand[struct{}, struct{}]("demo", "development", "group", argv, &taskexec.Options{
				Options:     tasks.Options{Retry: &tasks.NoRetry, Timeout: tt.timeout},
				Env:         []string{"PIDFILE=" + pidFile},
				GracePeriod: 300 * time.Millisecond,
			})
			d := startDispatcher(t, task)
			name := submitRun(t, d, task, `{}`)

			var pgid int
			require.Eventually(t, func() bool {
				b, err := os.ReadFile(pidFile)
				if err != nil {
					return false
				}
				pgid, err = strconv.Atoi(strings.TrimSpace(string(b)))
				return err == nil
			}, 10*time.Second, 5*time.Millisecond)
			if tt.phase == tasks.PhaseAborted {
				require.Eventually(t, func() bool { return len(liveGroup(t, pgid)) == 3 }, 10*time.Second, 5*time.Millisecond,
					"the shell and its two sleeps run")
				_, err := d.Abort(context.Background(), name, "enough")
				require.NoError(t, err)
			}
			run := waitRun(t, d, name)
			require.Equal(t, tt.phase, run.Phase, run.Error)
			require.Equal(t, tt.stderr, streamLines(t, d, name, "stderr"), "SIGTERM comes first")
			require.Eventually(t, func() bool { return len(liveGroup(t, pgid)) == 0 }, 5*time.Second, 10*time.Millisecond,
				"processes left in group %d: %v", pgid, liveGroup(t, pgid))
		})
	}
}

// liveGroup lists the processes of group pgid that are not zombies, as
// "pid state command", from /proc.
func liveGroup(t *testing.T, pgid int) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var live []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		fields := strings.Fields(s[end+1:])
		if len(fields) < 3 || fields[2] != strconv.Itoa(pgid) || fields[0] == "Z" {
			continue
		}
		live = append(live, e.Name()+" "+fields[0]+" "+s[strings.IndexByte(s, '(')+1:end])
	}
	return live
}
