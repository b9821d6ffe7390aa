package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/tasks"
)

const (
	aliceToken = "alice-token-0123456789"
	adminToken = "admin-token-0123456789"
)

// boom fails at once: a run that ends failed.
var boom = tasks.MustDefine("test", "development", "boom",
	func(context.Context, struct{}) (struct{}, error) {
		return struct{}{}, tasks.Permanent(errors.New("boom on purpose"))
	}, nil)

// serve serves the quickstart's service (and boom) over a real SQLite file
// on loopback until the test ends, and returns its URL.
func serve(t *testing.T) string {
	t.Helper()
	dataDir := t.TempDir()
	cfg, err := framework.ParseEnv(func(k string) string {
		return map[string]string{
			"TASKGATE_DATA_DIR":    dataDir,
			"TASKGATE_AUTH_TOKENS": aliceToken + "=alice:ml," + adminToken + "=root:admins",
			"TASKGATE_NODE_GPUS":   "A100:1",
		}[k]
	})
	require.NoError(t, err)
	reg := demo.Registry()
	reg.MustRegister(boom)
	svc, err := framework.FromEnv(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, demo.Webhook())
	require.NoError(t, err)
	return frameworktest.Serve(t, svc.App)
}

// shell is the environment the command runs in: its variables, its
// configuration folder, whether stderr is a terminal.
type shell struct {
	t         *testing.T
	vars      map[string]string
	configDir string
	terminal  bool
}

func newShell(t *testing.T, base, token string) *shell {
	return &shell{t: t, vars: map[string]string{"TASKGATE_URL": base, "TASKGATE_TOKEN": token}, configDir: t.TempDir()}
}

type outcome struct {
	code           int
	stdout, stderr string
}

// run runs the command line in process, through the root command.
func (s *shell) run(stdin string, args ...string) outcome {
	s.t.Helper()
	var out, errs bytes.Buffer
	ctx, cancel := context.WithTimeout(s.t.Context(), time.Minute)
	defer cancel()
	code := execute(ctx, args, &env{
		stdin:     strings.NewReader(stdin),
		stdout:    &out,
		stderr:    &errs,
		getenv:    func(k string) string { return s.vars[k] },
		configDir: func() (string, error) { return s.configDir, nil },
		terminal:  func(stream any) bool { return s.terminal && stream == any(&errs) },
	})
	return outcome{code: code, stdout: out.String(), stderr: errs.String()}
}

func TestRunWaitExitCodes(t *testing.T) {
	t.Parallel()
	sh := newShell(t, serve(t), aliceToken)

	ok := sh.run("", "run", "demo/development/echo", "-d", `{"message":"hi"}`, "--wait")
	require.Equal(t, exitOK, ok.code, ok.stderr)
	require.JSONEq(t, `{"message":"hi"}`, ok.stdout)

	failed := sh.run("", "run", "test/development/boom", "--wait")
	require.Equal(t, exitRunFailed, failed.code, failed.stderr)
	require.Contains(t, failed.stderr, "failed: boom on purpose")
	require.Empty(t, failed.stdout)

	// Without --wait: submitted is success, whatever the run becomes.
	submitted := sh.run("", "run", "test/development/boom")
	require.Equal(t, exitOK, submitted.code, submitted.stderr)
	require.Regexp(t, `^r[0-9a-z]+ queued\n$`, submitted.stdout)
}

func TestJSONOutputParsesBack(t *testing.T) {
	t.Parallel()
	sh := newShell(t, serve(t), aliceToken)

	res := sh.run("", "-o", "json", "run", "demo/development/echo", "-d", `{"message":"json"}`, "--wait")
	require.Equal(t, exitOK, res.code, res.stderr)
	var run struct {
		Name    string `json:"name"`
		Task    string `json:"task"`
		Phase   string `json:"phase"`
		Outputs struct {
			Message string `json:"message"`
		} `json:"outputs"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &run), res.stdout)
	require.Equal(t, "demo/development/echo", run.Task)
	require.Equal(t, "succeeded", run.Phase)
	require.Equal(t, "json", run.Outputs.Message)

	failed := sh.run("", "run", "test/development/boom", "--wait", "-o", "json")
	require.Equal(t, exitRunFailed, failed.code)
	var failedRun struct {
		Phase   string          `json:"phase"`
		Error   string          `json:"error"`
		Outputs json.RawMessage `json:"outputs"`
	}
	require.NoError(t, json.Unmarshal([]byte(failed.stdout), &failedRun), failed.stdout)
	require.Equal(t, "failed", failedRun.Phase)
	require.Equal(t, "null", string(failedRun.Outputs))

	get := sh.run("", "get", run.Name, "-o", "json")
	require.Equal(t, exitOK, get.code, get.stderr)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(get.stdout), &got))
	require.Equal(t, run.Name, got["name"])
	require.Equal(t, map[string]any{"message": "json"}, got["outputs"])

	list := sh.run("", "runs", "-o", "json")
	require.Equal(t, exitOK, list.code, list.stderr)
	var runs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(list.stdout), &runs))
	require.Len(t, runs, 2)
	require.Equal(t, run.Name, runs[1]["name"], "newest first")

	submitted := sh.run("", "run", "demo/development/echo", "-d", `{"message":"later"}`, "-o", "json")
	require.Equal(t, exitOK, submitted.code, submitted.stderr)
	var sub map[string]any
	require.NoError(t, json.Unmarshal([]byte(submitted.stdout), &sub))
	require.Equal(t, "queued", sub["phase"])

	version := sh.run("", "version", "-o", "json")
	var v map[string]string
	require.NoError(t, json.Unmarshal([]byte(version.stdout), &v))
	require.NotEmpty(t, v["version"])
	require.Contains(t, v["go"], "go1.")
}

func TestTablesShowTheRuns(t *testing.T) {
	t.Parallel()
	base := serve(t)
	sh := newShell(t, base, aliceToken)
	echo := sh.run("", "run", "demo/development/echo", "-d", `{"message":"a"}`)
	name := strings.Fields(echo.stdout)[0]
	require.Equal(t, exitRunFailed, sh.run("", "run", "test/development/boom", "--wait").code)
	require.Equal(t, exitOK, sh.run("", "run", "demo/development/echo", "-d", `{"message":"b"}`, "--wait").code)

	runs := sh.run("", "runs")
	require.Equal(t, exitOK, runs.code, runs.stderr)
	lines := strings.Split(strings.TrimSpace(runs.stdout), "\n")
	require.Len(t, lines, 4)
	require.Regexp(t, `^NAME +TASK +PHASE +ATTEMPT +CREATED +WAITING/ERROR$`, lines[0])
	require.Contains(t, lines[3], name)
	require.NotRegexp(t, `(?m) $`, runs.stdout, "no padding left at the ends of lines")
	// Aligned: each column starts where its header does.
	col := strings.Index(lines[0], "TASK")
	for _, l := range lines[1:] {
		require.Regexp(t, `^  [a-z]+/development/`, l[col-2:], "TASK column of %q", l)
	}

	failed := sh.run("", "runs", "--phase", "failed")
	require.Equal(t, exitOK, failed.code)
	require.Len(t, strings.Split(strings.TrimSpace(failed.stdout), "\n"), 2)
	require.Contains(t, failed.stdout, "boom on purpose")

	// Creation-time windows: the middle run's time splits the three.
	var listed []client.RunStatus
	require.NoError(t, json.Unmarshal([]byte(sh.run("", "runs", "-o", "json").stdout), &listed))
	require.Len(t, listed, 3)
	middle := listed[1].CreatedAt.Format(time.RFC3339Nano)
	for args, want := range map[string][]string{
		"--since 1h":                           {listed[0].Name, listed[1].Name, listed[2].Name},
		"--until 1h":                           {},
		"--since " + middle:                    {listed[0].Name, listed[1].Name},
		"--until " + middle:                    {listed[2].Name},
		"--since 2020-01-01 --until " + middle: {listed[2].Name},
	} {
		res := sh.run("", append([]string{"runs", "-o", "json"}, strings.Fields(args)...)...)
		require.Equal(t, exitOK, res.code, "%s: %s", args, res.stderr)
		var got []client.RunStatus
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &got), args)
		names := []string{}
		for _, r := range got {
			names = append(names, r.Name)
		}
		require.Equal(t, want, names, args)
	}

	one := sh.run("", "runs", "--task", "demo/development/echo", "--limit", "1")
	require.Len(t, strings.Split(strings.TrimSpace(one.stdout), "\n"), 2)
	require.NotContains(t, one.stdout, name, "the newest only")

	get := sh.run("", "get", name)
	require.Equal(t, exitOK, get.code, get.stderr)
	require.Regexp(t, `(?m)^NAME +`+name+`$`, get.stdout)
	require.Regexp(t, `(?m)^TASK +demo/development/echo$`, get.stdout)

	tasksOut := sh.run("", "tasks")
	require.Regexp(t, `(?m)^demo/development/echo +v\S+ +Returns the message it was given\.$`, tasksOut.stdout)

	admin := newShell(t, base, adminToken)
	nodes := admin.run("", "nodes")
	require.Equal(t, exitOK, nodes.code, nodes.stderr)
	require.Regexp(t, `(?m)^NODE +STATE +FREE CPU +FREE MEMORY +FREE DEVICES +RUNS$`, nodes.stdout)
	require.Contains(t, nodes.stdout, "A100-40GB:1")
	queue := admin.run("", "queue")
	require.Equal(t, exitOK, queue.code, queue.stderr)
	require.Regexp(t, `(?m)^queued +0$`, queue.stdout)
	all := admin.run("", "runs", "--all")
	require.Contains(t, all.stdout, name)
}

func TestInputsFromFileAndStdin(t *testing.T) {
	t.Parallel()
	sh := newShell(t, serve(t), aliceToken)
	file := filepath.Join(t.TempDir(), "in.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"message":"from a file"}`), 0o600))

	fromFile := sh.run("", "run", "demo/development/echo", "-d", "@"+file, "--wait")
	require.Equal(t, exitOK, fromFile.code, fromFile.stderr)
	require.JSONEq(t, `{"message":"from a file"}`, fromFile.stdout)
	fromStdin := sh.run(`{"message":"from stdin"}`+"\n", "run", "demo/development/echo", "-d", "-", "-w")
	require.Equal(t, exitOK, fromStdin.code, fromStdin.stderr)
	require.JSONEq(t, `{"message":"from stdin"}`, fromStdin.stdout)

	for name, args := range map[string][]string{
		"not JSON":     {"run", "demo/development/echo", "-d", `{message:hi}`},
		"no file":      {"run", "demo/development/echo", "-d", "@" + file + ".missing"},
		"no task":      {"run"},
		"bad output":   {"-o", "yaml", "tasks"},
		"unknown flag": {"runs", "--bogus"},
		"bad phase":    {"runs", "--phase", "sleeping"},
		"bad since":    {"runs", "--since", "yesterday"},
		"future since": {"runs", "--since", "-2h"},
		"bad until":    {"runs", "--until", "2026-13-01"},
		"bad command":  {"launch"},
	} {
		res := sh.run("", args...)
		require.Equal(t, exitUsage, res.code, "%s: %s", name, res.stderr)
		require.Contains(t, res.stderr, "--help' for usage", name)
	}
	var runs []any
	require.NoError(t, json.Unmarshal([]byte(sh.run("", "runs", "-o", "json").stdout), &runs))
	require.Len(t, runs, 2, "the refused command lines started no run")
}

func TestFollowPrintsEachPhase(t *testing.T) {
	t.Parallel()
	sh := newShell(t, serve(t), aliceToken)

	res := sh.run("", "run", "demo/development/sleep", "-d", `{"seconds":0.2}`, "--follow")
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Regexp(t, `(?s)^\d\d:\d\d:\d\d\.\d{3}  queued\n.*  running\n.*  succeeded\n\{\n  "slept": `, res.stdout)

	jsonl := sh.run("", "run", "test/development/boom", "--follow", "-o", "json")
	require.Equal(t, exitRunFailed, jsonl.code)
	lines := strings.Split(strings.TrimSpace(jsonl.stdout), "\n")
	var first tasks.Event
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
	require.Equal(t, tasks.PhaseQueued, first.Phase)
}

func TestStatusLineOnlyOnATerminal(t *testing.T) {
	t.Parallel()
	sh := newShell(t, serve(t), aliceToken)
	sh.terminal = true
	res := sh.run("", "run", "demo/development/sleep", "-d", `{"seconds":0.3}`, "--wait")
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Contains(t, res.stderr, "\r\033[K")
	require.Regexp(t, `r[0-9a-z]+ (queued|waiting_for_resources|initializing|running)`, res.stderr)
	require.True(t, strings.HasSuffix(res.stderr, "\r\033[K"), "the line is cleared: %q", res.stderr)
	require.NotContains(t, res.stdout, "\r")

	sh.terminal = false
	plain := sh.run("", "run", "demo/development/sleep", "-d", `{"seconds":0.3}`, "--wait")
	require.Empty(t, plain.stderr)
}

func TestAbortAndAPIErrors(t *testing.T) {
	t.Parallel()
	sh := newShell(t, serve(t), aliceToken)

	sub := sh.run("", "run", "demo/development/sleep", "-d", `{"seconds":600}`)
	name := strings.Fields(sub.stdout)[0]
	abort := sh.run("", "abort", name, "--reason", "enough")
	require.Equal(t, exitOK, abort.code, abort.stderr)
	require.Equal(t, "abort requested for "+name+"\n", abort.stdout)
	require.Eventually(t, func() bool {
		return strings.Contains(sh.run("", "get", name).stdout, "aborted")
	}, 20*time.Second, 20*time.Millisecond)
	again := sh.run("", "abort", name)
	require.Equal(t, exitAPI, again.code)
	require.Contains(t, again.stderr, "already finished")

	invalid := sh.run("", "run", "demo/development/echo", "-d", `{"message":5}`)
	require.Equal(t, exitAPI, invalid.code)
	require.Contains(t, invalid.stderr, "taskgate: 422 Unprocessable Entity: validation failed\n  body.message: ")

	missing := sh.run("", "get", "r0000000000000000000")
	require.Equal(t, exitAPI, missing.code)
	require.Contains(t, missing.stderr, "404 Not Found: run not found")

	forbidden := sh.run("", "nodes")
	require.Equal(t, exitAPI, forbidden.code)
	require.Contains(t, forbidden.stderr, "403 Forbidden")

	sh.vars["TASKGATE_TOKEN"] = "not-a-token-0123456789"
	unauth := sh.run("", "tasks")
	require.Equal(t, exitAPI, unauth.code)
	require.Contains(t, unauth.stderr, "401 Unauthorized")
}

func TestLoginStoresAPrivateToken(t *testing.T) {
	t.Parallel()
	base := serve(t)
	sh := newShell(t, base, "")

	bad := sh.run("", "login", "--url", base, "--token", "not-a-token-0123456789")
	require.Equal(t, exitAPI, bad.code)
	require.NoFileExists(t, filepath.Join(sh.configDir, "taskgate", "credentials.json"))

	// The token comes on stdin; the URL is remembered.
	delete(sh.vars, "TASKGATE_URL")
	login := sh.run(aliceToken+"\n", "login", "--url", base)
	require.Equal(t, exitOK, login.code, login.stderr)
	require.Contains(t, login.stdout, "Logged in to "+base+" as alice")
	path := filepath.Join(sh.configDir, "taskgate", "credentials.json")
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	dir, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), dir.Mode().Perm())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), aliceToken)

	// With neither TASKGATE_URL nor TASKGATE_TOKEN, the stored ones.
	tasksOut := sh.run("", "tasks")
	require.Equal(t, exitOK, tasksOut.code, tasksOut.stderr)
	require.Contains(t, tasksOut.stdout, "demo/development/echo")

	// TASKGATE_TOKEN wins over the stored token.
	sh.vars["TASKGATE_TOKEN"] = "not-a-token-0123456789"
	require.Equal(t, exitAPI, sh.run("", "tasks").code)

	empty := newShell(t, base, "")
	none := empty.run("", "login")
	require.Equal(t, exitUsage, none.code)
	require.Contains(t, none.stderr, "no token")
}

func TestLogsPrintsAndFollowsARunsLines(t *testing.T) {
	t.Parallel()
	sh := newShell(t, serve(t), aliceToken)
	sub := sh.run("", "run", "demo/development/train", "-d", `{"epochs":2,"seconds":0.4}`)
	require.Equal(t, exitOK, sub.code, sub.stderr)
	name := strings.Fields(sub.stdout)[0]

	res := sh.run("", "logs", name, "-f")
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Regexp(t, `(?s)^\d\d:\d\d:\d\d\.\d{3}  log     INFO   epoch done  \{"epoch":1,"of":2\}\n`+
		`.*  stdout  INFO   epoch 1 on GPU \d\n.*  log     INFO   epoch done  \{"epoch":2,"of":2\}\n.*  stdout  INFO   epoch 2 on GPU \d\n$`, res.stdout)

	got := sh.run("", "get", name)
	require.Contains(t, got.stdout, "2/2 epoch 2")

	jsonl := sh.run("", "logs", name, "-o", "json")
	require.Equal(t, exitOK, jsonl.code, jsonl.stderr)
	lines := strings.Split(strings.TrimSpace(jsonl.stdout), "\n")
	require.Len(t, lines, 4)
	var l client.LogLine
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &l))
	require.Equal(t, "stdout", l.Stream)

	missing := sh.run("", "logs", "nosuchrun")
	require.Equal(t, exitAPI, missing.code)
}
