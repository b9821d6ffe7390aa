package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/taskexec"
)

// python3 returns the interpreter the tests use, or skips.
func python3(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on PATH")
	}
	return py
}

// unpacked is the embedded scripts in a directory removed after the test.
func unpacked(t *testing.T) string {
	t.Helper()
	dir, err := unpack()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type greetIn struct {
	Name string `json:"name"`
}

type greetOut struct {
	Greeting string `json:"greeting"`
}

// The three lines the helper promises, plus a progress report.
const greetPy = `from taskgate_task import inputs, progress, outputs, fail
args = inputs()
if not args["name"]:
    fail("no name given")
for i in range(3):
    progress(i + 1, 3, "step %d" % (i + 1))
outputs({"greeting": "hello " + args["name"]})
`

func TestTaskgateTaskHelperSpeaksTheProtocol(t *testing.T) {
	t.Parallel()
	py, dir := python3(t), unpacked(t)
	script := filepath.Join(dir, "greet.py")
	require.NoError(t, os.WriteFile(script, []byte(greetPy), 0o600))
	task := taskexec.MustDefineCommand[greetIn, greetOut]("demo", "development", "greet", []string{py, script}, nil)

	var reports []tasks.ProgressReport
	ctx := tasks.WithProgressReporter(context.Background(), func(p tasks.ProgressReport) { reports = append(reports, p) })
	out, err := task.Call(ctx, greetIn{Name: "Ada"})
	require.NoError(t, err)
	require.Equal(t, greetOut{Greeting: "hello Ada"}, out)
	require.Equal(t, []tasks.ProgressReport{{Done: 1, Total: 3, Message: "step 1"}, {Done: 2, Total: 3, Message: "step 2"}, {Done: 3, Total: 3, Message: "step 3"}}, reports)

	_, err = task.Call(ctx, greetIn{})
	var perm *tasks.PermanentError
	require.ErrorAs(t, err, &perm, "fail() is exit code 3")
	require.ErrorContains(t, err, "no name given")

	// By hand, without taskgate: stdin in, stdout out, no progress.
	cmd := exec.Command(py, script)
	cmd.Stdin = strings.NewReader(`{"name":"Grace"}`)
	cmd.Env = append(os.Environ(), "TASKGATE_INPUTS=", "TASKGATE_OUTPUTS=", "TASKGATE_PROGRESS=")
	b, err := cmd.Output()
	require.NoError(t, err)
	require.JSONEq(t, `{"greeting":"hello Grace"}`, string(b))
}

func TestBenchWithoutTorchFailsForGood(t *testing.T) {
	t.Parallel()
	py, dir := python3(t), unpacked(t)
	if exec.Command(py, "-c", "import torch").Run() == nil {
		t.Skip("torch is installed: the benchmark would run (see README: examples/gpu-python)")
	}
	bench, err := newBench(dir, py)
	require.NoError(t, err)
	_, err = bench.Call(context.Background(), BenchInput{Size: 64})
	var perm *tasks.PermanentError
	require.ErrorAs(t, err, &perm, "no torch: no retry")
	require.ErrorContains(t, err, "exit status 3 (do not retry)")
	require.ErrorContains(t, err, "torch is not installed for ")
}

func TestBenchIsAValidDefinition(t *testing.T) {
	t.Parallel()
	bench, err := newBench(t.TempDir(), "python3")
	require.NoError(t, err)
	d := bench.Definition()
	require.Equal(t, "demo/development/bench", d.ID())
	require.Equal(t, []string{"1", "H100:3g.40gb", "A100-80GB:3g.40gb"}, []string{d.Request.GPUs[0].String(), d.Request.GPUs[1].String(), d.Request.GPUs[2].String()})
}

// TestInferServerWithoutTorchSaysWhy runs infer_server.py by hand, as a
// replica would: without torch it serves, and says why it cannot infer.
func TestInferServerWithoutTorchSaysWhy(t *testing.T) {
	t.Parallel()
	py, dir := python3(t), unpacked(t)
	if exec.Command(py, "-c", "import torch").Run() == nil {
		t.Skip("torch is installed: the server would serve (see README: examples/gpu-python)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.CommandContext(t.Context(), py, filepath.Join(dir, "infer_server.py"))
	cmd.Env = append(os.Environ(), "PORT="+port)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	base := "http://127.0.0.1:" + port
	var resp *http.Response
	require.Eventually(t, func() bool {
		resp, err = http.Get(base + "/health")
		return err == nil
	}, 20*time.Second, 50*time.Millisecond)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Contains(t, string(b), "torch is not installed for ")
	resp, err = http.Post(base+"/infer", "application/json", strings.NewReader(`{"size":256}`))
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Contains(t, string(b), "pip install torch")
}

func TestInferIsAValidServer(t *testing.T) {
	t.Parallel()
	env := newInfer(t.TempDir(), "python3")
	require.Equal(t, "/infer", env.Settings().PathPrefix)
}
