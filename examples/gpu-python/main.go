package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/taskexec"
)

//go:embed bench.py taskgate_task.py infer_server.py
var scripts embed.FS

// BenchInput is the input of demo/development/bench; every field is
// optional.
type BenchInput struct {
	Size       int    `json:"size,omitempty" minimum:"64" maximum:"32768" example:"8192" doc:"n of the n×n matrices (default 8192)."`
	Iterations int    `json:"iterations,omitempty" minimum:"1" maximum:"10000" doc:"Matmuls timed (default 50)."`
	DType      string `json:"dtype,omitempty" enum:"bfloat16,float16,float32" doc:"Element type (default bfloat16)."`
}

// BenchOutput is the output of demo/development/bench.
type BenchOutput struct {
	Device             string  `json:"device" doc:"torch.cuda.get_device_name of the run's GPU."`
	CUDAVisibleDevices string  `json:"cuda_visible_devices" doc:"The devices the scheduler gave the run."`
	TFLOPS             float64 `json:"tflops" doc:"Throughput of the timed matmuls, 2n³ per matmul."`
	Size               int     `json:"size"`
	Iterations         int     `json:"iterations"`
	DType              string  `json:"dtype"`
	Seconds            float64 `json:"seconds"`
}

// newBench defines demo/development/bench on the bench.py in dir.
func newBench(dir, python string) (*tasks.Task[BenchInput, BenchOutput], error) {
	return taskexec.DefineCommand[BenchInput, BenchOutput]("demo", "development", "bench",
		[]string{python, filepath.Join(dir, "bench.py")},
		&taskexec.Options{Options: tasks.Options{
			Description: "PyTorch matmul benchmark on one GPU: device name and TFLOP/s.",
			Resources:   tasks.Resources{CPU: "1", Memory: "4Gi", GPU: "1", GPUFallbacks: []string{"H100:3g.40gb", "A100-80GB:3g.40gb"}},
			Retry:       &tasks.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Second, Multiplier: 2},
			Timeout:     10 * time.Minute,
		}})
}

// unpack writes the embedded scripts into a new private directory.
func unpack() (string, error) {
	dir, err := os.MkdirTemp("", "taskgate-gpu-python-")
	if err != nil {
		return "", err
	}
	for _, name := range []string{"bench.py", "taskgate_task.py", "infer_server.py"} {
		b, err := scripts.ReadFile(name)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), b, 0o600)
		}
		if err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

func main() {
	python := flag.String("python", envOr("PYTHON", "python3"), "the Python interpreter that runs bench.py")
	once := flag.String("once", "", "run the benchmark once with these JSON inputs, print the run and exit")
	serverOnce := flag.String("server-once", "", "start the inference server, send it one request with these JSON inputs, show a benchmark waiting for its GPU, print and exit")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(context.Background(), logger, *python, *once, *serverOnce); err != nil {
		logger.Error("gpu-python stopped", "err", err)
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, logger *slog.Logger, python, once, serverOnce string) error {
	dir, err := unpack()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bench, err := newBench(dir, python)
	if err != nil {
		return err
	}
	reg := tasks.NewRegistry()
	reg.MustRegister(bench)
	cfg, err := framework.LoadEnv()
	if err != nil {
		return err
	}
	infer := newInfer(dir, python)
	svc, err := framework.FromEnv(ctx, cfg, logger, reg, webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "gpu-python", Title: "taskgate gpu-python"},
		Groups:   []string{webhook.GroupAll},
	}), infer)
	if err != nil {
		return err
	}
	if once != "" {
		return runOnce(ctx, svc, bench.Definition(), once)
	}
	if serverOnce != "" {
		return runServerOnce(ctx, svc, infer, bench.Definition(), serverOnce)
	}
	if svc.DevToken != "" {
		// Printed on stdout for the developer at the terminal; never logged.
		fmt.Printf(`
taskgate gpu-python on http://%[1]s  (docs: http://%[1]s/docs)

  export TOKEN=%[2]s
  curl -s -X POST 'http://%[1]s/run-task/demo/development/bench' -H "Prefer: wait=600" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"size":8192}'
  curl -s -X POST 'http://%[1]s/infer/infer' \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"size":4096}'

`, cfg.Addr, svc.DevToken)
	}
	return svc.App.Run(ctx)
}

// runOnce submits one run of def, waits for it and prints its logs and its
// outputs or error; a run that did not succeed is an error. An interrupt
// (Ctrl-C) aborts the run.
func runOnce(ctx context.Context, svc *framework.Service, def *tasks.Definition, inputs string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := svc.Dispatcher
	if err := d.Start(ctx); err != nil {
		return errors.Join(err, svc.Store.Close())
	}
	defer func() {
		closing, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = errors.Join(d.Close(closing), svc.Store.Close())
	}()
	r, _, err := d.Submit(ctx, dispatch.SubmitRequest{Task: def, Inputs: json.RawMessage(inputs), Caller: identity.Identity{Subject: "gpu-python"}})
	if err != nil {
		return err
	}
	name := r.Name
	fmt.Printf("run %s submitted\n", name)
	said := ""
	for !r.Done() {
		// The queue's reason tells a node without a GPU from a busy one.
		if _, reason := d.QueuePosition(name); reason != "" && reason != said {
			fmt.Printf("waiting: %s\n", reason)
			said = reason
		}
		select {
		case <-ctx.Done():
			fmt.Println("interrupted: aborting the run")
			if _, err := d.Abort(context.Background(), name, "interrupted"); err != nil && !errors.Is(err, dispatch.ErrAlreadyDone) {
				return err
			}
			ctx = context.Background()
		case <-time.After(time.Second):
		}
		if r, err = d.Get(ctx, name); err != nil {
			return err
		}
	}
	logs, err := d.Logs(ctx, name)
	if err != nil {
		return err
	}
	for _, l := range logs {
		fmt.Printf("  log %s %s %s\n", l.At.Format(time.TimeOnly), l.Message, l.Attrs)
	}
	if r.Phase != tasks.PhaseSucceeded {
		return fmt.Errorf("run %s %s after %d attempt(s): %s", name, r.Phase, len(r.Attempts), r.Error)
	}
	fmt.Printf("run %s succeeded: %s\n", name, r.Outputs)
	return nil
}
