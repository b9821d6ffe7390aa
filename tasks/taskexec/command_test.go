package taskexec_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/taskexec"
)

type greetIn struct {
	Name  string `json:"name"`
	Times int    `json:"times,omitempty"`
}

type protocolOut struct {
	Stdin   greetIn `json:"stdin"`
	File    greetIn `json:"file"`
	Dir     string  `json:"dir"`
	Mode    string  `json:"mode"`
	Run     string  `json:"run"`
	Attempt string  `json:"attempt"`
	CUDA    string  `json:"cuda"`
	NVIDIA  string  `json:"nvidia"`
	Secret  string  `json:"secret"`
	Extra   string  `json:"extra"`
	Python  string  `json:"python"`
}

// needSh skips where there is no POSIX shell (or no /proc-less unix).
func needSh(t testing.TB) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the scripts are POSIX sh")
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh on PATH")
	}
}

// script writes body to a shell script and returns the argv that runs it.
func script(t testing.TB, body string) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "task.sh")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return []string{"sh", p}
}

// record is one line a task logged.
type record struct {
	Level   slog.Level
	Message string
	Attrs   map[string]string
}

// recorder is a slog.Handler that keeps what the run logs.
type recorder struct {
	mu      sync.Mutex
	records []record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	attrs := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, record{rec.Level, rec.Message, attrs})
	return nil
}

func (r *recorder) all() []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]record(nil), r.records...)
}

// runContext is the context of attempt 2 of run rtest on devices 1 and 4,
// with a recorder for its logs and a list of its progress reports.
func runContext() (context.Context, *recorder, func() []tasks.ProgressReport) {
	rec := &recorder{}
	var mu sync.Mutex
	var reports []tasks.ProgressReport
	ctx := tasks.WithRunInfo(context.Background(), tasks.RunInfo{
		Name: "rtest", Attempt: 2, Devices: []tasks.Device{{Index: 1}, {Index: 4, UUID: "GPU-4"}}, Logger: slog.New(rec),
	})
	ctx = tasks.WithProgressReporter(ctx, func(p tasks.ProgressReport) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, p)
	})
	return ctx, rec, func() []tasks.ProgressReport {
		mu.Lock()
		defer mu.Unlock()
		return append([]tasks.ProgressReport(nil), reports...)
	}
}

// The process environment is changed, so this test is not parallel.
func TestCommandTaskGetsItsInputsDevicesAndADirectoryOfItsOwn(t *testing.T) {
	needSh(t)
	t.Setenv("TASKGATE_TEST_SECRET", "hunter2")
	base := t.TempDir()
	task, err := taskexec.DefineCommand[greetIn, protocolOut]("demo", "development", "protocol", script(t, `
stdin=$(cat)
file=$(cat "$TASKGATE_INPUTS")
mode=$(stat -c %a . 2>/dev/null || stat -f %Lp .)
printf '{"stdin":%s,"file":%s,"dir":"%s","mode":"%s","run":"%s","attempt":"%s","cuda":"%s","nvidia":"%s","secret":"%s","extra":"%s","python":"%s"}' \
  "$stdin" "$file" "$PWD" "$mode" "$TASKGATE_RUN" "$TASKGATE_ATTEMPT" "$CUDA_VISIBLE_DEVICES" "$NVIDIA_VISIBLE_DEVICES" \
  "$TASKGATE_TEST_SECRET" "$EXTRA" "$PYTHONUNBUFFERED" > "$TASKGATE_OUTPUTS"
`), &taskexec.Options{Dir: base, Env: []string{"EXTRA=given"}})
	require.NoError(t, err)
	ctx, _, _ := runContext()

	out, err := task.Call(ctx, greetIn{Name: "Ada", Times: 2})
	require.NoError(t, err)
	want := greetIn{Name: "Ada", Times: 2}
	require.Equal(t, want, out.Stdin, "inputs on stdin")
	require.Equal(t, want, out.File, "inputs in $TASKGATE_INPUTS")
	require.Equal(t, "700", out.Mode)
	require.Equal(t, base, filepath.Dir(out.Dir), "the working directory is made in Options.Dir")
	require.NoDirExists(t, out.Dir, "removed after the attempt")
	require.Equal(t, []string{"rtest", "2", "1,GPU-4", "1,GPU-4"}, []string{out.Run, out.Attempt, out.CUDA, out.NVIDIA})
	require.Empty(t, out.Secret, "taskgate's own TASKGATE_* variables are not passed on")
	require.Equal(t, "given", out.Extra)
	require.Equal(t, "1", out.Python)
}

type epochsOut struct {
	Epochs int     `json:"epochs"`
	Loss   float64 `json:"loss"`
	Note   string  `json:"note,omitempty"`
}

func TestCommandTaskOutputsAreCheckedAgainstTheirSchema(t *testing.T) {
	t.Parallel()
	needSh(t)
	tests := map[string]struct {
		body string
		err  string
	}{
		"missing":          {`exit 0`, "missing: the program exited 0 without writing its outputs"},
		"empty":            {`: > "$TASKGATE_OUTPUTS"`, "empty: expected a JSON value"},
		"malformed":        {`echo '{"epochs": 3,' > "$TASKGATE_OUTPUTS"`, "not valid JSON"},
		"trailing data":    {`echo '{"epochs":3,"loss":1} {}' > "$TASKGATE_OUTPUTS"`, "not valid JSON"},
		"wrong type":       {`echo '{"epochs":"three","loss":0.5}' > "$TASKGATE_OUTPUTS"`, "outputs.epochs: expected integer"},
		"missing required": {`echo '{"epochs":3}' > "$TASKGATE_OUTPUTS"`, "expected required property loss to be present"},
		"unknown field":    {`echo '{"epochs":3,"loss":0.5,"acc":1}' > "$TASKGATE_OUTPUTS"`, "acc"},
		"not an object":    {`echo '[1,2]' > "$TASKGATE_OUTPUTS"`, "expected object"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			task := taskexec.MustDefineCommand[struct{}, epochsOut]("demo", "development", "outs", script(t, tt.body), nil)
			ctx, _, _ := runContext()
			_, err := task.Call(ctx, struct{}{})
			require.Error(t, err)
			var perm *tasks.PermanentError
			require.ErrorAs(t, err, &perm, "a program that broke the contract would break it again")
			require.Contains(t, err.Error(), "outputs file ")
			require.Contains(t, err.Error(), "outputs.json ($TASKGATE_OUTPUTS)")
			require.Contains(t, err.Error(), tt.err)
		})
	}
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		task := taskexec.MustDefineCommand[struct{}, epochsOut]("demo", "development", "outs",
			script(t, `echo '{"epochs":3,"loss":0.25}' > "$TASKGATE_OUTPUTS"`), nil)
		ctx, _, _ := runContext()
		out, err := task.Call(ctx, struct{}{})
		require.NoError(t, err)
		require.Equal(t, epochsOut{Epochs: 3, Loss: 0.25}, out)
	})
	t.Run("no outputs to write", func(t *testing.T) {
		t.Parallel()
		task := taskexec.MustDefineCommand[struct{}, struct{}]("demo", "development", "outs", script(t, `exit 0`), nil)
		ctx, _, _ := runContext()
		_, err := task.Call(ctx, struct{}{})
		require.NoError(t, err, "a task with no outputs needs no outputs file")
	})
}

func TestCommandTaskReportsProgress(t *testing.T) {
	t.Parallel()
	needSh(t)
	task := taskexec.MustDefineCommand[struct{}, struct{}]("demo", "development", "progress", script(t, `
for i in 1 2 3; do
  printf '{"done":%d,"total":3,"message":"epoch %d"}\n' $i $i > "$TASKGATE_PROGRESS"
done
echo 'not json' >&3
echo '{"total":3}' >&3
echo '{"done":-1}' >&3
echo '{"done":3.5,"unit":"epochs"}' >&3
`), nil)
	ctx, rec, reports := runContext()
	_, err := task.Call(ctx, struct{}{})
	require.NoError(t, err)
	require.Equal(t, []tasks.ProgressReport{
		{Done: 1, Total: 3, Message: "epoch 1"}, {Done: 2, Total: 3, Message: "epoch 2"},
		{Done: 3, Total: 3, Message: "epoch 3"}, {Done: 3.5},
	}, reports())
	var ignored []string
	for _, r := range rec.all() {
		if r.Message == "progress line ignored" {
			ignored = append(ignored, r.Attrs["line"]+" → "+r.Attrs["error"])
		}
	}
	require.Len(t, ignored, 3, "%q", ignored)
	require.Contains(t, ignored[0], "not json → not a JSON progress object")
	require.Contains(t, ignored[1], `no "done"`)
	require.Contains(t, ignored[2], "may not be negative")
}

func TestCommandTaskProgressFromPython(t *testing.T) {
	t.Parallel()
	needSh(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on PATH")
	}
	p := filepath.Join(t.TempDir(), "task.py")
	require.NoError(t, os.WriteFile(p, []byte(`
import json, os
with open(os.environ["TASKGATE_PROGRESS"], "w") as f:
    for i in range(1, 4):
        print(json.dumps({"done": i, "total": 3}), file=f, flush=True)
`), 0o600))
	task := taskexec.MustDefineCommand[struct{}, struct{}]("demo", "development", "py", []string{py, p}, nil)
	ctx, _, reports := runContext()
	_, err = task.Call(ctx, struct{}{})
	require.NoError(t, err)
	require.Equal(t, []tasks.ProgressReport{{Done: 1, Total: 3}, {Done: 2, Total: 3}, {Done: 3, Total: 3}}, reports())
}

func TestCommandTaskExitCodes(t *testing.T) {
	t.Parallel()
	needSh(t)
	ctx, _, _ := runContext()

	permanent := taskexec.MustDefineCommand[struct{}, struct{}]("demo", "development", "exit3",
		script(t, `echo "torch is not installed" >&2; exit 3`), nil)
	_, err := permanent.Call(ctx, struct{}{})
	var perm *tasks.PermanentError
	require.ErrorAs(t, err, &perm)
	var ee *taskexec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 3, ee.Code)
	require.Equal(t, "sh: exit status 3 (do not retry); stderr ends with:\ntorch is not installed", err.Error())

	var lines strings.Builder
	for i := range 15 {
		lines.WriteString("echo line " + string(rune('a'+i)) + " >&2\n")
	}
	retryable := taskexec.MustDefineCommand[struct{}, struct{}]("demo", "development", "exit7",
		script(t, lines.String()+"exit 7"), nil)
	_, err = retryable.Call(ctx, struct{}{})
	require.False(t, errors.As(err, &perm), "another code may pass on a retry")
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 7, ee.Code)
	require.Equal(t, []string{"line f", "line g", "line h", "line i", "line j", "line k", "line l", "line m", "line n", "line o"}, ee.Stderr,
		"the last ten lines")

	missing := taskexec.MustDefineCommand[struct{}, struct{}]("demo", "development", "missing",
		[]string{"/nonexistent/taskgate-program"}, nil)
	_, err = missing.Call(ctx, struct{}{})
	require.ErrorAs(t, err, &perm, "a program that is not there will not be on a retry")
	require.Contains(t, err.Error(), "start /nonexistent/taskgate-program")
}

func TestDefineCommandChecksItsDefinition(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		argv []string
		opts *taskexec.Options
		err  string
	}{
		"no argv":          {nil, nil, "argv names no program"},
		"empty program":    {[]string{""}, nil, "argv names no program"},
		"env not KEY=VAL":  {[]string{"true"}, &taskexec.Options{Env: []string{"NOVALUE"}}, `Env entry "NOVALUE" is not KEY=VALUE`},
		"env empty key":    {[]string{"true"}, &taskexec.Options{Env: []string{"=x"}}, `Env entry "=x"`},
		"env sets devices": {[]string{"true"}, &taskexec.Options{Env: []string{"CUDA_VISIBLE_DEVICES=0"}}, "Env may not set CUDA_VISIBLE_DEVICES"},
		"env sets outputs": {[]string{"true"}, &taskexec.Options{Env: []string{"TASKGATE_OUTPUTS=/tmp/x"}}, "Env may not set TASKGATE_OUTPUTS"},
		"negative grace":   {[]string{"true"}, &taskexec.Options{GracePeriod: -1}, "negative grace period"},
		"bad resources":    {[]string{"true"}, &taskexec.Options{Options: tasks.Options{Resources: tasks.Resources{GPU: "Z9000:1"}}}, "Z9000"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := taskexec.DefineCommand[struct{}, struct{}]("demo", "development", "bad", tt.argv, tt.opts)
			require.ErrorIs(t, err, tasks.ErrInvalidDefinition)
			require.ErrorContains(t, err, tt.err)
		})
	}
	require.Panics(t, func() { taskexec.MustDefineCommand[struct{}, struct{}]("demo", "development", "bad", nil, nil) })
}

func TestCommandTaskEndsThoughAProcessLeftItsGroupWithItsOutput(t *testing.T) {
	t.Parallel()
	needSh(t)
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid on PATH")
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	task := taskexec.MustDefineCommand[struct{}, struct{}]("demo", "development", "escape",
		script(t, `setsid sleep 1000 & echo $! > "$PIDFILE"; echo started`), &taskexec.Options{Env: []string{"PIDFILE=" + pidFile}})
	t.Cleanup(func() {
		// The escapee is out of the group's reach, and so of the task's.
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				if p, err := os.FindProcess(pid); err == nil {
					_ = p.Kill()
				}
			}
		}
	})
	ctx, rec, _ := runContext()
	done := make(chan error, 1)
	go func() {
		_, err := task.Call(ctx, struct{}{})
		done <- err
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the attempt waits for a process that holds its stdout outside its group")
	}
	var out []string
	for _, r := range rec.all() {
		if r.Attrs["stream"] == "stdout" {
			out = append(out, r.Message)
		}
	}
	require.Equal(t, []string{"started"}, out)
}
